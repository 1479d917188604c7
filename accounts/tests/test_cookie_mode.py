"""Cookie mode for browser apps: the refresh token in an HttpOnly cookie, refreshed from a trusted Origin only."""

import pyotp
import pytest
from rest_framework.test import APIClient

from accounts.models import AuthSession
from conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login"
LOGIN_MFA = "/api/v1/auth/login/mfa"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/auth/me"
COOKIE = "__Secure-gatehouse-refresh"
OWN_ORIGIN = "http://testserver"  # the test client's scheme and host


def cookie_login(client, user, **extra):
    body = {"username": user.username, "password": TEST_PASSWORD, "cookie": True, **extra}
    response = client.post(LOGIN, body, format="json")
    assert response.status_code == 200, response.content
    return response


def refresh_by_cookie(client, origin=OWN_ORIGIN):
    headers = {"HTTP_ORIGIN": origin} if origin is not None else {}
    return client.post(REFRESH, {}, format="json", **headers)


def test_login_in_cookie_mode_sets_the_refresh_cookie_and_leaves_it_out_of_the_body(api_client, user, settings):
    response = cookie_login(api_client, user)
    assert "refresh_token" not in response.json()
    assert response.json()["token_type"] == "bearer"
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] and cookie["secure"]
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/api/v1/auth/"
    assert cookie["max-age"] == int(settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"].total_seconds())
    assert response.headers["Cache-Control"] == "no-store"
    # The access token in the body works as any other.
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access_token']}")
    assert bearer.get(ME).status_code == 200


def test_without_cookie_mode_nothing_changes(api_client, user):
    response = api_client.post(LOGIN, {"username": user.username, "password": TEST_PASSWORD}, format="json")
    assert "refresh_token" in response.json()
    assert COOKIE not in response.cookies


def test_refresh_by_cookie_rotates_it(api_client, user):
    first = cookie_login(api_client, user).cookies[COOKIE].value
    response = refresh_by_cookie(api_client)
    assert response.status_code == 200, response.content
    assert "refresh_token" not in response.json() and "access_token" in response.json()
    second = response.cookies[COOKIE].value
    assert second != first
    # The first cookie was consumed: presenting it again is reuse, which ends the session.
    replay = APIClient()
    replay.cookies[COOKIE] = first
    assert refresh_by_cookie(replay).status_code == 401
    assert AuthSession.objects.get(user=user).revoked_at is not None


def test_a_trusted_cross_origin_app_may_refresh(api_client, user, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    cookie_login(api_client, user)
    assert refresh_by_cookie(api_client, origin="https://app.example.com").status_code == 200


@pytest.mark.parametrize(
    "origin",
    [None, "null", "https://evil.example", "http://testserver.evil.example", "https://testserver", "http://testserve"],
)
def test_a_refresh_by_cookie_from_an_untrusted_origin_is_403_and_consumes_nothing(api_client, user, origin):
    """The CSRF defence: a page of another origin (or a request with no Origin) cannot spend the cookie."""
    cookie_login(api_client, user)
    response = refresh_by_cookie(api_client, origin=origin)
    assert response.status_code == 403, origin
    assert "Origin" in response.json()["detail"]
    assert COOKIE not in response.cookies
    assert refresh_by_cookie(api_client).status_code == 200  # the cookie is still unspent


def test_a_refresh_token_in_the_body_needs_no_origin(api_client, user):
    """Non-browser clients are unchanged: a token they hold in the body is no cookie a page could ride on."""
    pair = api_client.post(LOGIN, {"username": user.username, "password": TEST_PASSWORD}, format="json").json()
    response = APIClient().post(REFRESH, {"refresh_token": pair["refresh_token"]}, format="json")
    assert response.status_code == 200
    assert "refresh_token" in response.json()


def test_refresh_with_neither_body_nor_cookie_is_400(api_client):
    response = refresh_by_cookie(api_client)
    assert response.status_code == 400
    assert "refresh_token" in response.json()


def test_a_forged_cookie_is_401(api_client):
    api_client.cookies[COOKIE] = "not.a.jwt"
    assert refresh_by_cookie(api_client).status_code == 401


def test_logout_clears_the_cookie_and_ends_its_session(api_client, user):
    access = cookie_login(api_client, user).json()["access_token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    response = api_client.post(LOGOUT, {}, format="json")
    assert response.status_code == 204
    cleared = response.cookies[COOKIE]
    assert cleared.value == "" and cleared["max-age"] == 0 and cleared["path"] == "/api/v1/auth/"
    assert AuthSession.objects.get(user=user).revoked_at is not None


def test_logout_revokes_the_cookie_session_even_when_it_is_another(api_client, user, login):
    """A tab logged in by cookie and another by bearer: logging out with the cookie ends both."""
    cookie_login(api_client, user)
    other = login(user)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {other.access}")
    assert api_client.post(LOGOUT, {}, format="json").status_code == 204
    assert not AuthSession.objects.filter(user=user, revoked_at__isnull=True).exists()


@pytest.mark.usefixtures("keyring")
def test_cookie_mode_applies_to_the_second_step_of_a_two_factor_login(api_client, auth_client, user):
    secret = auth_client.post("/api/v1/auth/mfa/totp/setup").json()["secret"]
    confirmed = auth_client.post("/api/v1/auth/mfa/totp/confirm", {"code": pyotp.TOTP(secret).now()}, format="json")
    recovery_code = confirmed.json()["recovery_codes"][0]

    challenge = cookie_login(api_client, user)
    assert COOKIE not in challenge.cookies  # no tokens yet, so no cookie
    response = api_client.post(
        LOGIN_MFA, {"mfa_token": challenge.json()["mfa_token"], "code": recovery_code, "cookie": True}, format="json"
    )
    assert response.status_code == 200, response.content
    assert "refresh_token" not in response.json()
    assert response.cookies[COOKIE]["httponly"]
    assert refresh_by_cookie(api_client).status_code == 200
