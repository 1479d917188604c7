"""Password reset: the request (no enumeration, throttles), the link mailed over real SMTP, the confirmation
(single use, expiry, weak passwords) and what a reset revokes; the mail settings and send_test_email."""

import logging
import os
import time

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import services
from accounts.models import SecurityEvent
from accounts.tests.mail_server import _free_port, html_of, link_in, text_of
from apikeys.tests.factories import APIKeyFactory, x_api_key
from conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db

RESET = "/api/v1/auth/password/reset"
CONFIRM = "/api/v1/auth/password/reset/confirm"
ME = "/api/v1/auth/me"
NEW_PASSWORD = "a brand new passphrase 91"


def throttle_rate(settings, scope: str, rate: str) -> None:
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], scope: rate}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}


def ask_reset(client, email, **extra):
    return client.post(RESET, {"email": email}, format="json", **extra)


def reset_link(run_jobs, smtp_mail, client, email) -> dict:
    """Ask for a reset of `email` and return the uid and token of the link mailed to it."""
    with run_jobs():
        assert ask_reset(client, email).status_code == 202
    return link_in(smtp_mail.to(email)[-1])[1]


def test_the_mailed_link_sets_a_new_password(api_client, user, run_jobs, smtp_mail):
    with run_jobs() as sent:
        response = ask_reset(api_client, "ALICE@example.com")  # any letter case
    assert response.status_code == 202 and "detail" in response.json()
    assert [name for name, _ in sent] == ["accounts.send_account_mail"]

    (message,) = smtp_mail.messages
    assert message["To"] == "alice@example.com" and "reset" in message["Subject"].lower()
    url, link = link_in(message)
    assert url.startswith("http://testserver/password-reset?uid=")
    assert link["token"] in html_of(message)  # plain text and HTML

    with run_jobs():
        confirmed = api_client.post(CONFIRM, {**link, "new_password": NEW_PASSWORD}, format="json")
    assert confirmed.status_code == 204
    login = "/api/v1/auth/login"
    assert api_client.post(login, {"username": "alice", "password": TEST_PASSWORD}, format="json").status_code == 401
    assert api_client.post(login, {"username": "alice", "password": NEW_PASSWORD}, format="json").status_code == 200
    # The mail went to the address, which proves it: the account is verified now.
    user.refresh_from_db()
    assert user.email_verified


def test_known_and_unknown_addresses_get_the_same_answer_and_the_same_work(
    api_client, user, make_user, run_jobs, django_capture_on_commit_callbacks
):
    make_user("carol", email="carol@example.com", is_active=False)
    answers, work = {}, {}
    for email in ("alice@example.com", "nobody@example.com", "carol@example.com"):
        with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks() as queued:
            response = ask_reset(api_client, email)
        answers[email] = (response.status_code, response.json())
        work[email] = (len(queries), len(queued))
    # Same status and body; no query at all and one queued job each: the lookup happens in the worker.
    assert len(set(map(str, answers.values()))) == 1
    assert set(work.values()) == {(0, 1)}

    with run_jobs():
        for email in ("nobody@example.com", "carol@example.com", "alice@example.com"):
            ask_reset(api_client, email)
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]  # only the registered, active account


def test_reset_requests_are_limited_per_client_address(api_client, settings):
    throttle_rate(settings, "password_reset_address", "3/hour")
    statuses = [ask_reset(api_client, f"someone{n}@example.com").status_code for n in range(4)]
    assert statuses == [202, 202, 202, 429]
    assert ask_reset(api_client, "x@example.com", REMOTE_ADDR="198.51.100.9").status_code == 202


def test_reset_requests_are_limited_per_email_asked_for(api_client, settings):
    throttle_rate(settings, "password_reset_email", "2/hour")
    asks = ["victim@example.com", "Victim@Example.com", " VICTIM@example.com"]
    statuses = [ask_reset(api_client, email, REMOTE_ADDR=f"198.51.100.{n}").status_code for n, email in enumerate(asks)]
    assert statuses == [202, 202, 429]
    limited = ask_reset(api_client, "victim@example.com", REMOTE_ADDR="198.51.100.77")
    assert limited.status_code == 429 and "Retry-After" in limited.headers
    assert ask_reset(api_client, "other@example.com", REMOTE_ADDR="198.51.100.77").status_code == 202


def test_a_malformed_email_is_a_400(api_client):
    response = ask_reset(api_client, "not-an-address")
    assert response.status_code == 400 and "email" in response.json()
    assert api_client.post(RESET, {}, format="json").status_code == 400


def test_a_host_not_allowed_cannot_decide_where_the_link_points(api_client, user, settings, run_jobs):
    # Reset poisoning: the attacker asks for the victim's reset with their own Host, hoping for a link to it.
    settings.ALLOWED_HOSTS = ["gatehouse.example.com"]
    with run_jobs() as sent:
        response = ask_reset(api_client, "alice@example.com", HTTP_HOST="evil.example.net")
    assert response.status_code == 400 and sent == [] and mail.outbox == []


def test_frontend_url_decides_where_links_point(api_client, user, settings, run_jobs, smtp_mail):
    settings.FRONTEND_URL = "https://app.example.com"
    settings.FRONTEND_PASSWORD_RESET_PATH = "/account/reset"
    reset_link(run_jobs, smtp_mail, api_client, "alice@example.com")
    url, _ = link_in(smtp_mail.messages[0])
    assert url.startswith("https://app.example.com/account/reset?uid=")


def test_a_link_works_once_and_bad_links_get_the_same_answer(api_client, user, run_jobs, smtp_mail):
    link = reset_link(run_jobs, smtp_mail, api_client, "alice@example.com")
    with run_jobs():
        assert api_client.post(CONFIRM, {**link, "new_password": NEW_PASSWORD}, format="json").status_code == 204

    altered = link["token"][:-1] + ("a" if link["token"][-1] != "a" else "b")
    attempts = [
        {**link, "new_password": "another fine passphrase 7"},  # used
        {**link, "token": altered, "new_password": "another fine passphrase 7"},
        {"uid": "MTIzNDU2Nzg5", "token": link["token"], "new_password": "another fine passphrase 7"},  # no such user
        {"uid": "!!!", "token": "garbage", "new_password": "another fine passphrase 7"},
        {"uid": "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "token": "1-2", "new_password": "another fine passphrase 7"},
    ]
    answers = [api_client.post(CONFIRM, body, format="json") for body in attempts]
    assert {a.status_code for a in answers} == {400}
    assert {str(a.json()) for a in answers} == {str({"token": [services.RESET_LINK_INVALID]})}


def test_a_link_expires_after_password_reset_timeout(api_client, user, run_jobs, smtp_mail, settings):
    # The real clock, no patched `now`: tokens carry whole seconds, so after 2.1 s a 1-second timeout has passed.
    settings.PASSWORD_RESET_TIMEOUT = 1
    link = reset_link(run_jobs, smtp_mail, api_client, "alice@example.com")
    time.sleep(2.1)
    expired = api_client.post(CONFIRM, {**link, "new_password": NEW_PASSWORD}, format="json")
    assert expired.status_code == 400 and expired.json() == {"token": [services.RESET_LINK_INVALID]}

    settings.PASSWORD_RESET_TIMEOUT = 3600  # the same kind of link, used in time, works
    fresh = reset_link(run_jobs, smtp_mail, api_client, "alice@example.com")
    assert api_client.post(CONFIRM, {**fresh, "new_password": NEW_PASSWORD}, format="json").status_code == 204


def test_a_weak_password_is_a_400_and_the_link_still_works(api_client, user, run_jobs, smtp_mail):
    link = reset_link(run_jobs, smtp_mail, api_client, "alice@example.com")
    for weak in ("123", "password", "alice123"):
        response = api_client.post(CONFIRM, {**link, "new_password": weak}, format="json")
        assert response.status_code == 400 and "new_password" in response.json()
    assert api_client.post(CONFIRM, {**link, "new_password": NEW_PASSWORD}, format="json").status_code == 204


def test_a_reset_revokes_every_session_and_older_api_key(api_client, user, login, client_for, run_jobs, smtp_mail):
    pair = login(user)
    old_jwt, old_key = client_for(pair.access), APIKeyFactory(owner=user, name="laptop")
    assert old_jwt.get(ME).status_code == 200 and x_api_key(old_key.plaintext).get(ME).status_code == 200
    link = reset_link(run_jobs, smtp_mail, api_client, "alice@example.com")

    with run_jobs():
        assert api_client.post(CONFIRM, {**link, "new_password": NEW_PASSWORD}, format="json").status_code == 204

    assert old_jwt.get(ME).status_code == 401
    refreshed = api_client.post("/api/v1/auth/refresh", {"refresh_token": str(pair.refresh)}, format="json")
    assert refreshed.status_code == 401
    assert x_api_key(old_key.plaintext).get(ME).status_code == 401
    old_key.refresh_from_db()
    assert old_key.revoked_at is not None
    # The owner carries on with the new password: a new session, a new key.
    fresh = client_for(login(user, password=NEW_PASSWORD).access)
    assert fresh.get(ME).status_code == 200
    assert x_api_key(APIKeyFactory(owner=user, name="new").plaintext).get(ME).status_code == 200
    types = [event["type"] for event in fresh.get("/api/v1/auth/events").json()["results"]]
    assert types[:4] == ["api_key_created", "login", "password_reset", "api_key_revoked"]


def test_the_owner_is_told_their_password_was_reset(api_client, user, run_jobs, smtp_mail):
    link = reset_link(run_jobs, smtp_mail, api_client, "alice@example.com")
    with run_jobs():
        api_client.post(CONFIRM, {**link, "new_password": NEW_PASSWORD}, format="json", REMOTE_ADDR="203.0.113.5")
    notice = smtp_mail.messages[-1]
    assert notice["To"] == "alice@example.com" and "was reset" in notice["Subject"]
    assert "203.0.113.5" in text_of(notice) and "203.0.113.5" in html_of(notice)
    assert link["token"] not in notice.as_string() and "uid=" not in notice.as_string()


def test_no_password_or_token_in_mails_logs_or_events(api_client, user, run_jobs, smtp_mail, caplog):
    caplog.set_level(logging.DEBUG)
    link = reset_link(run_jobs, smtp_mail, api_client, "alice@example.com")
    with run_jobs():
        api_client.post(CONFIRM, {**link, "new_password": "weak"}, format="json")
        api_client.post(CONFIRM, {**link, "new_password": NEW_PASSWORD}, format="json")
    api_client.post("/api/v1/auth/login", {"username": "alice", "password": NEW_PASSWORD}, format="json")

    secrets = [NEW_PASSWORD, TEST_PASSWORD, link["token"]]
    events = " ".join(str((e.type, e.detail, e.user_agent)) for e in SecurityEvent.objects.all())
    for secret in secrets:
        assert secret not in caplog.text and secret not in events
    reset_mail, *others = smtp_mail.messages
    assert others and all(secret not in m.as_string() for m in others for secret in secrets)
    assert NEW_PASSWORD not in reset_mail.as_string() and TEST_PASSWORD not in reset_mail.as_string()


def test_the_job_retries_when_the_mail_server_refuses(api_client, user, run_jobs, smtp_mail):
    smtp_mail.mailbox.refuse_next = 2  # 451: a temporary failure, twice
    with run_jobs():
        assert ask_reset(api_client, "alice@example.com").status_code == 202
    assert smtp_mail.mailbox.refused == 2
    assert [m["To"] for m in smtp_mail.messages] == ["alice@example.com"]


def test_the_default_email_url_is_the_console():
    if os.environ.get("EMAIL_URL"):
        pytest.skip("EMAIL_URL is set in this environment: the default does not apply")
    from config.settings import base

    assert base.EMAIL_BACKEND == "django.core.mail.backends.console.EmailBackend"


def test_send_test_email_says_which_backend_sent_it(smtp_mail, capsys):
    call_command("send_test_email", "ops@example.com")
    assert f"smtp.EmailBackend (127.0.0.1:{smtp_mail.port})" in capsys.readouterr().out
    (message,) = smtp_mail.messages
    assert message["To"] == "ops@example.com" and "test" in message["Subject"].lower()


def test_send_test_email_fails_with_one_line_when_the_server_is_unreachable(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", _free_port(), 2
    with pytest.raises(CommandError) as failure:
        call_command("send_test_email", "ops@example.com")
    assert "Could not send the test mail to ops@example.com: ConnectionRefusedError" in str(failure.value)
    assert "\n" not in str(failure.value)
