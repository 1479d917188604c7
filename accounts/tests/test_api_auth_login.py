"""The browsable API: the root at /api/v1/, and /api-auth/ log-in and log-out for any active user.

The log-in is Django's login view with the admin's form (accounts.forms.LoginForm): it must apply every rule the
API login applies (two-factor code, throttles, inactive and unverified accounts, generic error), follow `next`
only on this host, and a cookie session must end with the account's other sessions (logout-all, password
change, deactivation). Through the cookie a user sees their own objects as HTML, never another user's.
"""

import time

import pyotp
import pytest
from django.test import Client

from accounts import services
from accounts.models import SecurityEvent
from apikeys import services as apikey_services
from config.views import API_ROOT_LINKS
from conftest import TEST_PASSWORD
from posts import services as post_services
from tasks.services import lifecycle as task_services

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("keyring")]

LOGIN = "/api-auth/login/"
LOGOUT = "/api-auth/logout/"
ROOT = "/api/v1/"
HTML = {"HTTP_ACCEPT": "text/html"}
GENERIC = "Please enter a correct username and password, and your two-factor code"


def log_in(client, username, password=TEST_PASSWORD, code=None, next_url=None, **extra):
    form = {"username": username, "password": password}
    if code is not None:
        form["code"] = code
    if next_url is not None:
        form["next"] = next_url
    return client.post(LOGIN, form, **extra)


def logged_in_as(client):
    return client.session.get("_auth_user_id")


def turn_on_mfa(user) -> str:
    secret = services.mfa_totp_setup(user=user).secret
    if 30 - time.time() % 30 < 5:  # leave the codes of this step time to be used
        time.sleep(30 - time.time() % 30 + 0.1)
    services.mfa_totp_confirm(user=user, code=pyotp.TOTP(secret).at(time.time() - 30))
    return secret


def rates(settings, **changed):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **changed},
    }


# THE ROOT
# ------------------------------------------------------------------------------
def test_the_root_lists_the_top_level_endpoints_as_absolute_links(client):
    response = client.get(ROOT, HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    links = response.json()
    assert set(links) == set(API_ROOT_LINKS)
    assert links["posts"] == "http://testserver/api/v1/posts"
    assert links["auth/api-keys"] == "http://testserver/api/v1/auth/api-keys"
    assert links["tasks"] == "http://testserver/api/v1/tasks"


def test_every_link_of_the_root_answers(client, auth_client):
    links = client.get(ROOT, HTTP_ACCEPT="application/json").json()
    for name, url in links.items():
        response = auth_client.get(url, HTTP_ACCEPT="application/json")
        # The credential endpoints take POST only; users is the admins' (403 for alice); the rest answer 200.
        expected = {"auth/register": 405, "auth/login": 405, "users": 403}.get(name, 200)
        assert response.status_code == expected, (name, response.status_code)


def test_the_root_in_a_browser_is_the_browsable_api_with_a_login_link(client):
    response = client.get(ROOT, **HTML)

    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "href='/api-auth/login/?next=/api/v1/'" in page
    assert "http://testserver/api/v1/posts" in page


# LOG-IN
# ------------------------------------------------------------------------------
def test_the_login_page_has_the_code_field(client):
    page = client.get(LOGIN).content.decode()
    assert 'name="username"' in page and 'name="password"' in page
    assert 'name="code"' in page and 'autocomplete="one-time-code"' in page


def test_a_user_who_is_not_staff_logs_in_and_browses(client, user):
    assert not user.is_staff
    response = log_in(client, "alice")

    assert response.status_code == 302 and response["Location"] == ROOT
    assert logged_in_as(client) == str(user.pk)
    event = SecurityEvent.objects.get(user=user, type="login")
    assert event.detail == {"via": "api-auth"}
    assert client.get("/api/v1/auth/me", **HTML).status_code == 200


def test_the_email_logs_in_too_regardless_of_case(client, user):
    assert log_in(client, "ALICE@example.com").status_code == 302 and logged_in_as(client) == str(user.pk)


def test_a_wrong_password_gets_the_generic_message_like_an_unknown_user(client, user):
    wrong = log_in(client, "alice", password="not it")
    unknown = log_in(client, "nobody", password="not it")

    for refused in (wrong, unknown):
        assert refused.status_code == 200 and GENERIC in refused.content.decode()
    assert logged_in_as(client) is None
    assert SecurityEvent.objects.filter(user=user, type="login_failed").count() == 1
    assert not SecurityEvent.objects.filter(type="login").exists()


def test_an_inactive_user_is_refused_with_the_generic_message(client, make_user):
    make_user("carol", is_active=False)
    refused = log_in(client, "carol")
    assert refused.status_code == 200 and GENERIC in refused.content.decode()
    assert logged_in_as(client) is None


def test_a_user_with_two_factor_must_give_a_valid_code(client, user):
    secret = turn_on_mfa(user)

    missing = log_in(client, "alice")
    wrong = log_in(client, "alice", code="000000")
    wrong_password = log_in(client, "alice", password="not it", code=pyotp.TOTP(secret).now())

    for refused in (missing, wrong, wrong_password):
        assert refused.status_code == 200 and GENERIC in refused.content.decode()
    assert logged_in_as(client) is None
    assert SecurityEvent.objects.get(user=user, type="mfa_failed").detail == {
        "during": "api_auth_login",
        "method": "totp",
    }

    code = pyotp.TOTP(secret).now()
    assert log_in(client, "alice", code=code).status_code == 302 and logged_in_as(client) == str(user.pk)
    client.post(LOGOUT)
    replayed = log_in(client, "alice", code=code)  # a code works once
    assert GENERIC in replayed.content.decode() and logged_in_as(client) is None


def test_codes_spend_the_accounts_two_factor_budget(client, user, settings):
    """Whoever knows the password may not try codes at the login rate: the mfa_account budget applies."""
    rates(settings, mfa_account="2/min")
    secret = turn_on_mfa(user)
    for n in range(2):
        log_in(client, "alice", code="000000", REMOTE_ADDR=f"10.2.0.{n}")

    refused = log_in(client, "alice", code=pyotp.TOTP(secret).now(), REMOTE_ADDR="10.2.0.9")

    assert "Too many login attempts" in refused.content.decode() and logged_in_as(client) is None


def test_the_login_is_throttled_per_address(client, user, settings):
    rates(settings, login_address="2/min")
    assert [log_in(client, f"nobody{n}", password="x").status_code for n in range(2)] == [200, 200]

    refused = log_in(client, "alice")  # the right password, but the address's budget is spent

    assert "Too many login attempts" in refused.content.decode() and logged_in_as(client) is None


def test_the_login_shares_the_api_logins_failure_budget(client, api_client, user, settings):
    rates(settings, login_account="3/min")
    for n in range(3):
        log_in(client, "alice", password="guess", REMOTE_ADDR=f"10.1.0.{n}")

    refused = log_in(client, "alice", REMOTE_ADDR="10.1.0.9")

    assert "Too many login attempts" in refused.content.decode() and logged_in_as(client) is None
    api = api_client.post("/api/v1/auth/login", {"username": "alice", "password": TEST_PASSWORD}, format="json")
    assert api.status_code == 429


def test_an_unverified_address_is_refused_under_mandatory_verification(client, user, settings, mailoutbox):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    assert not user.email_verified

    refused = log_in(client, "alice")

    assert refused.status_code == 200 and "Verify your email address first" in refused.content.decode()
    assert logged_in_as(client) is None
    wrong = log_in(client, "alice", password="not it")  # only the password's holder learns it is unverified
    assert GENERIC in wrong.content.decode()


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/", "//evil.example/api/v1/", "/\\evil.example", "javascript:alert(1)"]
)
def test_an_unsafe_next_is_ignored(client, user, next_url):
    response = log_in(client, "alice", next_url=next_url)
    assert response.status_code == 302 and response["Location"] == ROOT


def test_a_next_on_this_host_is_followed(client, user):
    response = log_in(client, "alice", next_url="/api/v1/posts")
    assert response.status_code == 302 and response["Location"] == "/api/v1/posts"


# BROWSING ONE'S OWN OBJECTS
# ------------------------------------------------------------------------------
@pytest.fixture
def objects(user, other_user):
    """alice's and bob's post, task and API key."""
    mine = {
        "post": post_services.post_create(author=user, content="alice's post"),
        "task": task_services.task_create(owner=user, task_name="alice's task"),
        "api-key": apikey_services.api_key_create(user=user, name="alice's key")[0],
    }
    theirs = {
        "task": task_services.task_create(owner=other_user, task_name="bob's task"),
        "api-key": apikey_services.api_key_create(user=other_user, name="bob's key")[0],
    }
    return mine, theirs


def test_every_list_and_detail_renders_as_html_for_its_owner(client, user, objects):
    mine, _ = objects
    log_in(client, "alice")
    pages = {
        "/api/v1/posts": "alice&#x27;s post",
        f"/api/v1/posts/{mine['post'].pk}": "alice&#x27;s post",
        "/api/v1/tasks": "alice&#x27;s task",
        f"/api/v1/tasks/{mine['task'].pk}": "alice&#x27;s task",
        "/api/v1/auth/api-keys": "alice&#x27;s key",
        f"/api/v1/auth/api-keys/{mine['api-key'].pk}": "alice&#x27;s key",
        "/api/v1/auth/me": "alice@example.com",
        "/api/v1/provider-keys": "results",
    }
    for url, shown in pages.items():
        response = client.get(url, **HTML)
        assert response.status_code == 200, url
        assert response["Content-Type"].startswith("text/html"), url
        assert shown in response.content.decode(), url


def test_the_credential_lists_need_a_jwt_and_say_so_in_html(client, user):
    """Sessions and security events are JWT-only (accounts.permissions.HasJWT: cookies and API keys do not
    manage credentials): through the cookie they answer 403 with that reason, as a page."""
    log_in(client, "alice")
    for url in ("/api/v1/auth/sessions", "/api/v1/auth/events"):
        response = client.get(url, **HTML)
        assert response.status_code == 403 and response["Content-Type"].startswith("text/html"), url
        assert "needs a JWT access token" in response.content.decode(), url


def test_another_users_object_is_404_in_html(client, user, objects):
    _, theirs = objects
    log_in(client, "alice")
    for url in (f"/api/v1/tasks/{theirs['task'].pk}", f"/api/v1/auth/api-keys/{theirs['api-key'].pk}"):
        response = client.get(url, **HTML)
        assert response.status_code == 404, url
        assert "bob&#x27;s" not in response.content.decode()
    listed = client.get("/api/v1/tasks", **HTML).content.decode()
    assert "alice&#x27;s task" in listed and "bob&#x27;s task" not in listed


def test_without_logging_in_the_lists_are_401_in_html(client, objects):
    response = client.get("/api/v1/tasks", **HTML)
    assert response.status_code in (401, 403)
    assert "alice&#x27;s task" not in response.content.decode()


# CSRF AND LOG-OUT
# ------------------------------------------------------------------------------
def test_unsafe_methods_through_the_cookie_need_the_csrf_token(user):
    browser = Client(enforce_csrf_checks=True)
    browser.get(LOGIN)
    token = browser.cookies["csrftoken"].value
    assert browser.post(LOGIN, {"username": "alice", "password": TEST_PASSWORD, "csrfmiddlewaretoken": token})
    assert logged_in_as(browser) == str(user.pk)
    token = browser.cookies["csrftoken"].value  # rotated at login

    forged = browser.post("/api/v1/posts", {"content": "forged"}, content_type="application/json")
    assert forged.status_code == 403 and "CSRF" in forged.json()["detail"]
    sent = browser.post("/api/v1/posts", {"content": "mine"}, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert sent.status_code == 201


def test_the_login_form_needs_the_csrf_token(user):
    browser = Client(enforce_csrf_checks=True)
    assert log_in(browser, "alice").status_code == 403 and logged_in_as(browser) is None


def test_logout_is_a_post_with_the_csrf_token(user):
    browser = Client(enforce_csrf_checks=True)
    browser.get(LOGIN)
    browser.post(
        LOGIN,
        {"username": "alice", "password": TEST_PASSWORD, "csrfmiddlewaretoken": browser.cookies["csrftoken"].value},
    )
    assert browser.get(LOGOUT).status_code == 405
    assert browser.post(LOGOUT).status_code == 403  # no token: still logged in
    assert logged_in_as(browser) == str(user.pk)

    out = browser.post(LOGOUT, HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value)

    assert out.status_code == 302 and out["Location"] == ROOT
    assert logged_in_as(browser) is None
    assert browser.get("/api/v1/auth/me", HTTP_ACCEPT="application/json").status_code in (401, 403)
    assert SecurityEvent.objects.get(user=user, type="logout").detail == {"via": "api-auth"}


# A COOKIE SESSION ENDS WITH THE ACCOUNT'S OTHER SESSIONS
# ------------------------------------------------------------------------------
def _me(client):
    return client.get("/api/v1/auth/me", HTTP_ACCEPT="application/json").status_code


@pytest.mark.parametrize("ending", ["logout_all", "password_change", "deactivation", "password_reset_by_admin"])
def test_a_cookie_session_ends_with_the_accounts_sessions(client, user, auth_client, ending):
    log_in(client, "alice")
    assert _me(client) == 200

    if ending == "logout_all":
        assert auth_client.post("/api/v1/auth/logout-all").status_code in (200, 204)
    elif ending == "password_change":
        changed = auth_client.post(
            "/api/v1/auth/password/change",
            {"current_password": TEST_PASSWORD, "new_password": "another horse battery staple"},
            format="json",
        )
        assert changed.status_code in (200, 204), changed.content
    elif ending == "deactivation":
        services.user_deactivate(user=user)
    else:
        user.set_password("set by an admin, long enough")
        user.save()

    assert _me(client) in (401, 403)
    if ending == "deactivation":  # and reactivating the account does not bring the old cookie back
        services.user_update(user=user, is_active=True)
        assert _me(client) in (401, 403)
