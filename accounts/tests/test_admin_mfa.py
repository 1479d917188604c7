"""The admin and two-factor: the login form asks staff for their code and is throttled like the API login;
the user admin shows two-factor state and resets it, with an event."""

import time

import pyotp
import pytest

from accounts import services
from accounts.models import RecoveryCode, SecurityEvent, TOTPDevice
from conftest import TEST_PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("keyring")]

ADMIN_LOGIN = "/admin/login/"
GENERIC = "and your two-factor code if two-factor authentication is on"


def turn_on_mfa(user) -> tuple[str, list[str]]:
    """Two-factor on through the services: (secret, recovery codes)."""
    secret = services.mfa_totp_setup(user=user).secret
    if 30 - time.time() % 30 < 5:  # leave the codes of this step time to be used
        time.sleep(30 - time.time() % 30 + 0.1)
    recovery = services.mfa_totp_confirm(user=user, code=pyotp.TOTP(secret).at(time.time() - 30))
    return secret, recovery


def admin_login(client, username, password=TEST_PASSWORD, code=None, **extra):
    form = {"username": username, "password": password, "next": "/admin/"}
    if code is not None:
        form["code"] = code
    return client.post(ADMIN_LOGIN, form, **extra)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def staff(make_user):
    return make_user("root", is_staff=True, is_superuser=True)


def test_the_login_page_has_a_code_field(client):
    page = client.get(ADMIN_LOGIN).content.decode()
    assert 'name="code"' in page and 'autocomplete="one-time-code"' in page


def test_staff_without_two_factor_log_in_as_before(client, staff):
    response = admin_login(client, "root")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"
    assert logged_in(client) and client.get("/admin/").status_code == 200


def test_staff_with_two_factor_must_give_a_code(client, staff):
    secret, _ = turn_on_mfa(staff)

    missing = admin_login(client, "root")
    wrong = admin_login(client, "root", code="000000")
    wrong_password = admin_login(client, "root", password="not it", code=pyotp.TOTP(secret).now())

    for refused in (missing, wrong, wrong_password):
        assert refused.status_code == 200 and GENERIC in refused.content.decode()
    assert not logged_in(client)
    assert client.get("/admin/").status_code == 302  # to the login page
    assert SecurityEvent.objects.filter(user=staff, type="mfa_failed").first().detail == {
        "during": "admin_login",
        "method": "totp",
    }

    accepted = admin_login(client, "root", code=pyotp.TOTP(secret).now())
    assert accepted.status_code == 302 and logged_in(client)
    assert client.get("/admin/").status_code == 200


def test_an_admin_code_is_single_use_too(client, staff):
    secret, recovery = turn_on_mfa(staff)
    code = pyotp.TOTP(secret).now()
    assert admin_login(client, "root", code=code).status_code == 302
    client.logout()
    assert admin_login(client, "root", code=code).status_code == 200  # replayed
    assert admin_login(client, "root", code=recovery[0]).status_code == 302
    client.logout()
    assert admin_login(client, "root", code=recovery[0]).status_code == 200


def test_the_admin_login_counts_against_the_api_login_budget(client, api_client, staff, settings):
    """The form refuses (it cannot answer 429) once the per-account failure budget is spent, even with the right
    password; the API login, which shares the budget, answers 429."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "login_account": "3/min"},
    }
    for n in range(3):
        assert admin_login(client, "root", password="guess", REMOTE_ADDR=f"10.1.0.{n}").status_code == 200

    refused = admin_login(client, "root", REMOTE_ADDR="10.1.0.9")

    assert refused.status_code == 200 and "Too many login attempts" in refused.content.decode()
    assert not logged_in(client)
    api = api_client.post("/api/v1/auth/login", {"username": "ROOT", "password": TEST_PASSWORD}, format="json")
    assert api.status_code == 429


def test_the_admin_login_is_throttled_per_address(client, make_user, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "login_address": "2/min"},
    }
    make_user("root2", is_staff=True)
    assert [admin_login(client, f"nobody{n}", password="x").status_code for n in range(2)] == [200, 200]
    refused = admin_login(client, "root2")
    assert "Too many login attempts" in refused.content.decode() and not logged_in(client)


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def test_the_user_admin_shows_two_factor_state(admin_client, user, other_user, django_assert_max_num_queries):
    turn_on_mfa(user)

    with django_assert_max_num_queries(5):  # session, user, counts, page: no query per row (3 rows)
        listing = admin_client.get("/admin/accounts/user/").content.decode()
    assert "Two-factor" in listing and 'alt="True"' in listing and 'alt="False"' in listing

    on = admin_client.get(f"/admin/accounts/user/{user.pk}/change/").content.decode()
    assert "On since" in on and "10 unused recovery code(s)" in on
    assert "Off" in admin_client.get(f"/admin/accounts/user/{other_user.pk}/change/").content.decode()


def test_reset_two_factor_action_turns_it_off_with_an_event(admin_client, user, other_user, api_client):
    turn_on_mfa(user)
    services.mfa_challenge_issue(user=user)

    response = admin_client.post(
        "/admin/accounts/user/",
        {"action": "reset_two_factor", "_selected_action": [user.pk, other_user.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "Two-factor reset for 1 user(s); 1 selected had it off." in response.content.decode()
    assert not TOTPDevice.objects.filter(user=user).exists() and not RecoveryCode.objects.filter(user=user).exists()
    event = SecurityEvent.objects.filter(user=user).first()
    assert event.type == "admin_change" and event.detail == {"change": "mfa_reset", "by": "root"}
    assert not SecurityEvent.objects.filter(user=other_user, type="admin_change").exists()
    login = api_client.post("/api/v1/auth/login", {"username": user.username, "password": TEST_PASSWORD}, format="json")
    assert "access_token" in login.json()
