"""Email verification: the link mailed at registration and on a change of address (over real SMTP), resending
it, re-authentication for a change, ACCOUNT_EMAIL_VERIFICATION (login and squatting under mandatory, what
optional does about squatting), the database's uniqueness rule, and a real worker sending after commit."""

import logging
import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import services
from accounts.models import AuthSession, SecurityEvent, User
from accounts.tests.mail_server import html_of, link_in, text_of
from apikeys.tests.factories import APIKeyFactory, x_api_key
from conftest import TEST_PASSWORD
from tasks.tests.factories import wait_until

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
VERIFY = "/api/v1/auth/email/verify"
RESEND = "/api/v1/auth/email/verify/resend"
ME = "/api/v1/auth/me"
PASSPHRASE = "violet-harbour-tangent-42"


def register(client, username, email, password=PASSPHRASE):
    return client.post(REGISTER, {"username": username, "email": email, "password": password}, format="json")


def log_in(client, username, password=PASSPHRASE):
    return client.post(LOGIN, {"username": username, "password": password}, format="json")


def last_link(smtp, address) -> dict:
    return link_in(smtp.to(address)[-1])[1]


@pytest.fixture
def mandatory(settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"


def test_registration_mails_a_link_that_verifies_the_address(api_client, run_jobs, smtp_mail):
    with run_jobs():
        assert register(api_client, "dora", "Dora@Example.com").status_code == 201
    (message,) = smtp_mail.messages
    assert message["To"] == "Dora@example.com" and "verify" in message["Subject"].lower()
    url, link = link_in(message)
    assert url.startswith("http://testserver/verify-email?uid=") and link["token"] in html_of(message)

    # The original systems' flow is unchanged under the default (optional): log in before verifying.
    access = log_in(api_client, "dora").json()["access_token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    assert api_client.get(ME).json()["email_verified"] is False

    assert api_client.post(VERIFY, link, format="json").status_code == 204
    me = api_client.get(ME).json()
    assert me["email_verified"] is True and me["pending_email"] == ""
    assert [e["type"] for e in api_client.get("/api/v1/auth/events").json()["results"]][:1] == ["email_verified"]
    replay = api_client.post(VERIFY, link, format="json")
    assert replay.status_code == 400 and replay.json() == {"token": [services.VERIFY_LINK_INVALID]}


def test_bad_and_foreign_tokens_are_refused(api_client, user, run_jobs, smtp_mail):
    from django.contrib.auth.tokens import default_token_generator

    uid = services.urlsafe_base64_encode(str(user.pk).encode())
    reset_token = default_token_generator.make_token(user)  # a valid reset token is no verification token
    for body in ({"uid": uid, "token": reset_token}, {"uid": uid, "token": "x"}, {"uid": "???", "token": "x:y:z"}):
        response = api_client.post(VERIFY, body, format="json")
        assert response.status_code == 400 and response.json() == {"token": [services.VERIFY_LINK_INVALID]}
    assert api_client.post(VERIFY, {}, format="json").status_code == 400
    user.refresh_from_db()
    assert not user.email_verified


def test_a_verification_link_expires(api_client, run_jobs, smtp_mail, settings):
    settings.EMAIL_VERIFICATION_TIMEOUT = 1  # the real clock: tokens carry whole seconds
    with run_jobs():
        register(api_client, "dora", "dora@example.com")
    time.sleep(2.1)
    assert api_client.post(VERIFY, last_link(smtp_mail, "dora@example.com"), format="json").status_code == 400


def test_resend_mails_a_new_link_and_is_limited_per_user(user, login, client_for, run_jobs, smtp_mail, settings):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "verify_resend_user": "2/hour"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    client = client_for(login(user).access)
    with run_jobs():
        answers = [client.post(RESEND) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert len(smtp_mail.to("alice@example.com")) == 2
    assert client.post(VERIFY, last_link(smtp_mail, "alice@example.com"), format="json").status_code == 204
    assert client.get(ME).json()["email_verified"] is True


def test_resend_needs_a_jwt_and_says_when_there_is_nothing_to_verify(user, login, client_for, run_jobs, smtp_mail):
    assert x_api_key(APIKeyFactory(owner=user, name="ci").plaintext).post(RESEND).status_code == 403
    User.objects.filter(pk=user.pk).update(email_verified=True)
    with run_jobs() as sent:
        response = client_for(login(user).access).post(RESEND)
    assert response.status_code == 202 and "already verified" in response.json()["detail"]
    assert sent == [] and smtp_mail.messages == []


def test_an_email_change_needs_a_recent_authentication(user, login, client_for, run_jobs):
    client = client_for(login(user).access)
    AuthSession.objects.filter(user=user).update(authenticated_at=timezone.now() - timedelta(minutes=60))
    cache.clear()  # the cached session would still hold the login time
    refused = client.patch(ME, {"email": "new@example.com"}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "reauth_required"
    # Not a change: the name and the same address (in any case) need nothing more.
    same = client.patch(ME, {"name": "Al", "email": "ALICE@example.com"}, format="json")
    assert same.status_code == 200 and same.json()["name"] == "Al"
    key_client = x_api_key(APIKeyFactory(owner=user, name="ci").plaintext)
    assert key_client.patch(ME, {"email": "new@example.com"}, format="json").status_code == 403
    assert key_client.patch(ME, {"name": "Bo"}, format="json").status_code == 200

    assert client.post("/api/v1/auth/reauth", {"password": TEST_PASSWORD}, format="json").status_code == 204
    with run_jobs():
        assert client.patch(ME, {"email": "new@example.com"}, format="json").status_code == 200


def test_a_new_address_takes_effect_once_verified(user, other_user, login, client_for, run_jobs, smtp_mail):
    client = client_for(login(user).access)
    assert client.patch(ME, {"email": "bob@EXAMPLE.com"}, format="json").status_code == 409  # taken

    with run_jobs():
        changed = client.patch(ME, {"email": "first@example.com"}, format="json").json()
    first_link = last_link(smtp_mail, "first@example.com")
    with run_jobs():
        again = client.patch(ME, {"email": "alice.new@example.com"}, format="json").json()
    assert changed["email"] == again["email"] == "alice@example.com"  # nothing changed yet
    assert again["pending_email"] == "alice.new@example.com"
    assert smtp_mail.to("alice@example.com") == []
    # The first address was replaced: its link no longer verifies anything.
    assert client.post(VERIFY, first_link, format="json").status_code == 400

    message = smtp_mail.to("alice.new@example.com")[-1]
    assert "change" in message["Subject"].lower() or "new" in message["Subject"].lower()
    with run_jobs():
        assert client.post(VERIFY, link_in(message)[1], format="json").status_code == 204
    me = client.get(ME).json()
    assert (me["email"], me["pending_email"], me["email_verified"]) == ("alice.new@example.com", "", True)
    (notice,) = smtp_mail.to("alice@example.com")  # the old address is told
    assert "changed" in notice["Subject"] and "token=" not in notice.as_string()
    event = SecurityEvent.objects.filter(user=user).first()
    assert (event.type, event.detail) == ("email_change", {"from": "alice@example.com", "to": "alice.new@example.com"})
    # Logging in by the new address works, by the old one no longer.
    assert log_in(client, "alice.new@example.com", TEST_PASSWORD).status_code == 200
    assert log_in(client, "alice@example.com", TEST_PASSWORD).status_code == 401


def test_a_pending_address_someone_else_claims_first_cannot_be_verified(user, login, client_for, run_jobs, smtp_mail):
    client = client_for(login(user).access)
    with run_jobs():
        client.patch(ME, {"email": "wanted@example.com"}, format="json")
        assert register(client, "eve", "wanted@example.com").status_code == 201  # a pending change claims nothing
    alices_link = link_in(smtp_mail.to("wanted@example.com")[0])[1]  # the second mail is eve's
    response = client.post(VERIFY, alices_link, format="json")
    assert response.status_code == 400 and response.json() == {"email": [services.EMAIL_TAKEN_BY_OTHER]}
    user.refresh_from_db()
    assert user.email == "alice@example.com"


def test_mandatory_refuses_login_until_verified_and_mails_a_link(api_client, mandatory, run_jobs, smtp_mail):
    with run_jobs():
        register(api_client, "dora", "dora@example.com")
        refused = log_in(api_client, "dora")
        log_in(api_client, "dora")  # a second refusal within minutes sends no second link
    assert refused.status_code == 403
    assert refused.json() == {"detail": services.EMAIL_UNVERIFIED, "code": "email_unverified"}
    assert len(smtp_mail.to("dora@example.com")) == 2  # registration's, and the login's
    assert log_in(api_client, "dora", "wrong password").status_code == 401  # nothing told without the password

    assert api_client.post(VERIFY, last_link(smtp_mail, "dora@example.com"), format="json").status_code == 204
    assert log_in(api_client, "dora").status_code == 200


def test_mandatory_defeats_squatting(api_client, mandatory, run_jobs, smtp_mail):
    with run_jobs():
        # The attacker registers the victim's address first, and cannot read its mail.
        assert register(api_client, "mallory", "victim@example.com").status_code == 201
    mallory_link = last_link(smtp_mail, "victim@example.com")  # (what the victim's inbox got)
    with run_jobs():
        assert register(api_client, "victim", "Victim@example.com").status_code == 201
    victim_link = last_link(smtp_mail, "victim@example.com")
    assert api_client.post(VERIFY, victim_link, format="json").status_code == 204

    # The first to verify keeps it: the attacker's account can never verify it now, nor log in.
    lost = api_client.post(VERIFY, mallory_link, format="json")
    assert lost.status_code == 400 and lost.json() == {"email": [services.EMAIL_TAKEN_BY_OTHER]}
    assert log_in(api_client, "mallory").status_code == 403
    # The address is taken now, for anyone else; the victim logs in by it.
    assert register(api_client, "latecomer", "victim@example.com").status_code == 409
    response = log_in(api_client, "victim@example.com")
    assert response.status_code == 200
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access_token']}")
    assert api_client.get(ME).json()["username"] == "victim"
    # A reset asked for the address goes to the verified holder only.
    with run_jobs():
        api_client.post("/api/v1/auth/password/reset", {"email": "victim@example.com"}, format="json")
    assert "victim" in text_of(smtp_mail.messages[-1]) and "mallory" not in text_of(smtp_mail.messages[-1])


def test_optional_lets_the_real_owner_take_a_squatted_address_back_by_reset(
    api_client, make_user, login, client_for, run_jobs, smtp_mail
):
    squatter = make_user("mallory", email="victim@example.com")
    squatter_session = client_for(login(squatter).access)
    assert register(api_client, "victim", "victim@example.com").status_code == 409  # as it always was
    # The reset link goes to the address's mailbox, the victim's: the account becomes theirs.
    with run_jobs():
        api_client.post("/api/v1/auth/password/reset", {"email": "victim@example.com"}, format="json")
    confirm = {**last_link(smtp_mail, "victim@example.com"), "new_password": "the victims own passphrase"}
    with run_jobs():
        assert api_client.post("/api/v1/auth/password/reset/confirm", confirm, format="json").status_code == 204
    assert squatter_session.get(ME).status_code == 401
    squatter.refresh_from_db()
    assert squatter.email_verified


def test_the_database_keeps_claimed_addresses_unique_in_any_case(make_user, settings):
    make_user("first", email="same@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_user("second", email="SAME@example.com")
    # Unclaimed (mandatory, unverified) accounts may share an address with each other and with its holder.
    make_user("third", email="same@example.com", email_claimed=False)
    fourth = make_user("fourth", email="Same@Example.com", email_claimed=False)
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.filter(pk=fourth.pk).update(email_claimed=True)


def test_switching_to_mandatory_releases_unverified_claims_at_the_next_registration(api_client, make_user, settings):
    legacy = make_user("legacy", email="old@example.com")  # claimed under optional, never verified
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    assert register(api_client, "newcomer", "old@example.com").status_code == 201
    legacy.refresh_from_db()
    assert not legacy.email_claimed


def test_no_password_or_token_in_logs_or_events(api_client, run_jobs, smtp_mail, caplog):
    caplog.set_level(logging.DEBUG)
    with run_jobs():
        register(api_client, "dora", "dora@example.com")
    link = last_link(smtp_mail, "dora@example.com")
    api_client.post(VERIFY, link, format="json")
    events = " ".join(str((e.type, e.detail)) for e in SecurityEvent.objects.all())
    for secret in (PASSPHRASE, link["token"]):
        assert secret not in caplog.text and secret not in events
    assert PASSPHRASE not in smtp_mail.messages[0].as_string()


def test_the_admin_shows_verification(client, make_user, user):
    admin = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    User.objects.filter(pk=user.pk).update(pending_email="next@example.com")
    page = client.get(f"/admin/accounts/user/{user.pk}/change/").content.decode()
    assert "Email verified" in page and "next@example.com" in page
    assert client.get("/admin/accounts/user/?email_verified__exact=0").status_code == 200


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_sends_the_verification_mail_after_commit(api_client, smtp_server, start_worker):
    worker = start_worker(EMAIL_URL=smtp_server.url)
    with transaction.atomic():
        user = services.user_register(
            username="dora", email="dora@example.com", password=PASSPHRASE, origin="http://testserver"
        )
        time.sleep(1.5)  # the worker is up and idle, yet nothing is sent before the commit
        assert smtp_server.messages == []
    (message,) = smtp_server.wait_for(1)
    worker.wait_for_log("accounts.send_account_mail", timeout=10)
    assert message["To"] == "dora@example.com"
    assert api_client.post(VERIFY, link_in(message)[1], format="json").status_code == 204
    user.refresh_from_db()
    assert user.email_verified

    # Through the API too: the request answers at once, the worker sends.
    assert register(api_client, "eli", "eli@example.com").status_code == 201
    smtp_server.wait_for(2)
    wait_until(lambda: worker.count("succeeded") >= 2, timeout=10, what="two mail jobs done")
