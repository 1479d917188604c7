"""Security events (GET /auth/events, the admin) and re-authentication for sensitive actions."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from accounts import services
from accounts.models import AuthSession, SecurityEvent
from apikeys.tests.factories import x_api_key
from conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/auth/events"
REAUTH = "/api/v1/auth/reauth"
API_KEYS = "/api/v1/auth/api-keys"


def types(client) -> list[str]:
    response = client.get(EVENTS)
    assert response.status_code == 200
    return [event["type"] for event in response.json()["results"]]


def age_sessions(user, minutes: int) -> None:
    """As if the user's last login or reauth was `minutes` ago."""
    AuthSession.objects.filter(user=user).update(authenticated_at=timezone.now() - timedelta(minutes=minutes))
    cache.clear()  # a cached session would still hold the old time


def test_login_is_an_event_with_the_client_address_and_agent(api_client, user):
    response = api_client.post(
        "/api/v1/auth/login",
        {"username": user.username, "password": TEST_PASSWORD},
        format="json",
        HTTP_USER_AGENT="curl/8.5",
        REMOTE_ADDR="203.0.113.7",
    )
    access = response.json()["access_token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")

    event = api_client.get(EVENTS).json()["results"][0]

    assert event["type"] == "login"
    assert (event["ip_address"], event["user_agent"]) == ("203.0.113.7", "curl/8.5")
    assert set(event) == {"id", "type", "created_at", "ip_address", "user_agent", "detail"}


def test_each_credential_change_is_recorded_newest_first(auth_client, user, login, client_for):
    created = auth_client.post(API_KEYS, {"name": "ci"}, format="json").json()
    auth_client.delete(f"{API_KEYS}/{created['id']}")
    other = login(user)
    auth_client.delete(f"/api/v1/auth/sessions/{other.access.session_id}")
    auth_client.post(
        "/api/v1/auth/password/change",
        {"current_password": TEST_PASSWORD, "new_password": "a new and long passphrase"},
        format="json",
    )

    assert types(auth_client) == [
        "password_change",
        "session_revoked",
        "login",
        "api_key_revoked",
        "api_key_created",
        "login",
    ]
    revoked = auth_client.get(EVENTS).json()["results"][3]
    assert revoked["detail"]["by"] == "owner" and revoked["detail"]["prefix"] == created["prefix"]

    fresh = client_for(login(user, password="a new and long passphrase").access)
    fresh.post("/api/v1/auth/logout-all")
    assert SecurityEvent.objects.filter(user=user).first().type == "logout_all"


def test_events_are_your_own_and_need_a_jwt(auth_client, user, other_user, login, client_for, api_client):
    login(other_user)
    mine = auth_client.get(EVENTS).json()["results"]
    assert mine and all(SecurityEvent.objects.get(pk=e["id"]).user_id == user.pk for e in mine)

    key = auth_client.post(API_KEYS, {"name": "reader"}, format="json").json()["api_key"]
    assert x_api_key(key).get(EVENTS).status_code == 403
    assert api_client.get(EVENTS).status_code == 401


def test_an_event_cannot_carry_a_secret(user):
    for field in ("password", "refresh_token", "api_key", "totp_secret", "recovery_code"):
        with pytest.raises(ValueError):
            services.security_event_record(user=user, type="login", detail={field: "x"})
    with pytest.raises(ValueError):
        services.security_event_record(user=user, type="made_up", detail={})


def test_creating_a_credential_needs_a_recent_authentication(auth_client, user):
    age_sessions(user, 16)  # REAUTH_WINDOW_MINUTES is 15

    refused = auth_client.post(API_KEYS, {"name": "late"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "reauth_required" and "reauth" in refused.json()["detail"]
    provider = auth_client.post("/api/v1/provider-keys", {"provider": "openai", "api_key": "sk-abc"}, format="json")
    assert provider.status_code == 403 and provider.json()["code"] == "reauth_required"

    assert auth_client.post(REAUTH, {"password": "not it"}, format="json").status_code == 401
    assert auth_client.post(API_KEYS, {"name": "late"}, format="json").status_code == 403

    assert auth_client.post(REAUTH, {"password": TEST_PASSWORD}, format="json").status_code == 204
    assert auth_client.post(API_KEYS, {"name": "late"}, format="json").status_code == 201


def test_a_fresh_login_counts_and_the_window_is_per_session(auth_client, user, login, client_for):
    assert auth_client.post(API_KEYS, {"name": "right after login"}, format="json").status_code == 201

    age_sessions(user, 16)
    other = client_for(login(user).access)  # a new login: its own session is fresh
    assert other.post(API_KEYS, {"name": "second"}, format="json").status_code == 201
    assert auth_client.post(API_KEYS, {"name": "first again"}, format="json").status_code == 403


def test_reauth_needs_a_jwt(auth_client):
    key = auth_client.post(API_KEYS, {"name": "k"}, format="json").json()["api_key"]
    response = x_api_key(key).post(REAUTH, {"password": TEST_PASSWORD}, format="json")
    assert response.status_code == 403


def test_reauth_password_guesses_are_limited_per_account(auth_client, client_for, user, login, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "login_user": "3/min"},
    }
    cache.clear()
    for _ in range(3):
        assert auth_client.post(REAUTH, {"password": "guess"}, format="json").status_code == 401
    # Another session of the same account, from the same or another address, shares the budget.
    other = client_for(login(user).access)
    response = other.post(REAUTH, {"password": TEST_PASSWORD}, format="json", REMOTE_ADDR="198.51.100.9")
    assert response.status_code == 429 and "Retry-After" in response.headers
