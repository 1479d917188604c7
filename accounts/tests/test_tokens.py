"""JWT sessions: what makes a token fail, rotation, revocation."""

import threading
import time
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services
from accounts.models import AuthSession, RefreshTokenRecord

pytestmark = pytest.mark.django_db

ME = "/api/v1/auth/me"
REFRESH = "/api/v1/auth/refresh"


def sign(payload, key=None, algorithm="HS256"):
    return jwt.encode(payload, key or settings.SIMPLE_JWT["SIGNING_KEY"], algorithm=algorithm)


def claims_of(token) -> dict:
    """The claims as signed: the payload, with the issuer and audience the backend adds."""
    return {**token.payload, "iss": settings.JWT_ISSUER, "aud": settings.JWT_AUDIENCE}


def test_bearer_scheme_is_case_insensitive(user, login):
    access = str(login(user).access)
    for scheme in ("Bearer", "bearer", "BEARER"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"{scheme} {access}")
        response = client.get(ME)
        assert response.status_code == 200, scheme
        assert response.json()["username"] == "alice"


def test_me_shape(auth_client):
    body = auth_client.get(ME).json()
    assert set(body) == {
        *("id", "username", "email", "name", "is_admin", "date_joined", "last_login"),
        *("email_verified", "pending_email", "mfa_enabled"),
    }
    assert body["is_admin"] is False and body["last_login"] is not None


def test_missing_credentials_are_401_with_www_authenticate(api_client):
    response = api_client.get(ME)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_token_in_query_string_is_not_accepted(api_client, user, login):
    access = str(login(user).access)
    assert api_client.get(f"{ME}?access_token={access}").status_code == 401
    assert api_client.get(f"{ME}?token={access}").status_code == 401


def _forged(user, login, **changes):
    claims = claims_of(login(user).access)
    claims.update(changes)
    return claims


@pytest.mark.parametrize(
    "attack",
    [
        "expired",
        "tampered",
        "alg_none",
        "wrong_algorithm",
        "wrong_key",
        "future_iat",
        "no_session",
        "garbage",
        "other_user",
        "no_audience",
        "other_audience",
        "no_issuer",
        "other_issuer",
    ],
)
def test_bad_access_tokens_are_401(user, other_user, login, client_for, attack):
    now = int(time.time())
    if attack == "expired":
        token = sign(_forged(user, login, iat=now - 7200, exp=now - 3600))
    elif attack == "tampered":
        good = str(login(user).access)
        header, payload, signature = good.split(".")
        token = f"{header}.{payload[:-2]}AA.{signature}"
    elif attack == "alg_none":
        token = jwt.encode(_forged(user, login), key="", algorithm="none")
    elif attack == "wrong_algorithm":
        token = sign(_forged(user, login), algorithm="HS512")
    elif attack == "wrong_key":
        token = sign(_forged(user, login), key="not-our-key-" * 4)
    elif attack == "future_iat":
        token = sign(_forged(user, login, iat=now + 3600, exp=now + 7200))
    elif attack == "no_session":
        claims = _forged(user, login)
        del claims["sid"]
        token = sign(claims)
    elif attack == "garbage":
        token = "not.a.jwt"
    elif attack in ("no_audience", "no_issuer"):
        claims = _forged(user, login)
        del claims["aud" if attack == "no_audience" else "iss"]
        token = sign(claims)
    elif attack == "other_audience":
        token = sign(_forged(user, login, aud="billing"))
    elif attack == "other_issuer":
        token = sign(_forged(user, login, iss="https://evil.example"))
    else:  # a valid session id of alice's, presented as bob
        token = sign(_forged(user, login, user_id=str(other_user.pk)))
    response = client_for(token).get(ME)
    assert response.status_code == 401, attack
    assert "WWW-Authenticate" in response.headers


def test_a_forged_token_with_every_claim_right_passes(user, login, client_for):
    """The attacks above fail for what they change, not for something the forgery got wrong."""
    assert client_for(sign(_forged(user, login))).get(ME).status_code == 200


def test_tokens_carry_the_issuer_and_audience(user, login):
    claims = jwt.decode(str(login(user).access), options={"verify_signature": False})
    assert (claims["iss"], claims["aud"]) == (settings.JWT_ISSUER, "gatehouse")


def test_refresh_token_is_not_an_access_token_and_vice_versa(api_client, user, login, client_for):
    pair = login(user)
    assert client_for(pair.refresh).get(ME).status_code == 401
    assert api_client.post(REFRESH, {"refresh_token": str(pair.access)}, format="json").status_code == 401


def test_refresh_rotates_and_reuse_revokes_the_session(api_client, user, login, client_for):
    first = login(user)
    response = api_client.post(REFRESH, {"refresh_token": str(first.refresh)}, format="json")
    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != str(first.refresh)
    assert client_for(second["access_token"]).get(ME).status_code == 200

    # The consumed token is presented again: a sign of theft. The whole session ends.
    replay = api_client.post(REFRESH, {"refresh_token": str(first.refresh)}, format="json")
    assert replay.status_code == 401
    assert client_for(second["access_token"]).get(ME).status_code == 401
    assert api_client.post(REFRESH, {"refresh_token": second["refresh_token"]}, format="json").status_code == 401
    assert AuthSession.objects.get(pk=first.access.session_id).revoked_reason == "refresh_token_reuse"


def test_no_raw_token_is_stored(user, login):
    pair = login(user)
    record = RefreshTokenRecord.objects.get()
    stored = " ".join(str(value) for value in RefreshTokenRecord.objects.values_list().get())
    assert str(pair.refresh) not in stored and record.jti == pair.refresh["jti"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_refreshes_exactly_one_wins(user, login):
    refresh = str(login(user).refresh)
    barrier = threading.Barrier(2)
    statuses = []

    def exchange():
        try:
            client = APIClient()
            barrier.wait()
            statuses.append(client.post(REFRESH, {"refresh_token": refresh}, format="json").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=exchange) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 401]


def test_logout_rejects_the_same_access_token_at_once(user, login, client_for, api_client):
    pair = login(user)
    client = client_for(pair.access)
    assert client.get(ME).status_code == 200  # warms the session cache
    assert client.post("/api/v1/auth/logout", {}, format="json").status_code == 204
    assert client.get(ME).status_code == 401
    assert api_client.post(REFRESH, {"refresh_token": str(pair.refresh)}, format="json").status_code == 401


def test_logout_all_rejects_every_session(user, login, client_for, api_client):
    pairs = [login(user) for _ in range(3)]
    for pair in pairs:
        assert client_for(pair.access).get(ME).status_code == 200
    assert client_for(pairs[0].access).post("/api/v1/auth/logout-all").status_code == 204
    for pair in pairs:
        assert client_for(pair.access).get(ME).status_code == 401
        assert api_client.post(REFRESH, {"refresh_token": str(pair.refresh)}, format="json").status_code == 401
    # A new login afterwards works.
    assert client_for(login(user).access).get(ME).status_code == 200


def test_password_change_revokes_other_sessions_only(user, login, client_for, password, api_client):
    mine, other = login(user), login(user)
    response = client_for(mine.access).post(
        "/api/v1/auth/password/change",
        {"current_password": password, "new_password": "a-brand-new-passphrase"},
        format="json",
    )
    assert response.status_code == 204
    assert client_for(mine.access).get(ME).status_code == 200
    assert client_for(other.access).get(ME).status_code == 401
    assert api_client.post(REFRESH, {"refresh_token": str(other.refresh)}, format="json").status_code == 401
    assert api_client.post(REFRESH, {"refresh_token": str(mine.refresh)}, format="json").status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"current_password": "wrong-one-1", "new_password": "a-brand-new-passphrase"}, "current_password"),
        ({"current_password": "correct horse battery staple", "new_password": "12345678"}, "password"),
    ],
)
def test_password_change_rejects_wrong_current_or_weak_new(auth_client, body, field):
    response = auth_client.post("/api/v1/auth/password/change", body, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_deactivated_user_is_401_at_once(user, login, client_for):
    pair = login(user)
    client = client_for(pair.access)
    assert client.get(ME).status_code == 200
    services.user_deactivate(user=user)
    assert client.get(ME).status_code == 401


def test_expired_session_is_401(user, login, client_for):
    pair = login(user)
    AuthSession.objects.update(expires_at=AuthSession.objects.get().created_at - timedelta(seconds=1))
    assert client_for(pair.access).get(ME).status_code == 401


# A token verified once is remembered by its exact text (accounts/tokens.py, KeyringTokenBackend.decode).


def test_a_remembered_token_still_expires(user, login, client_for, monkeypatch):
    access = login(user).access
    client = client_for(access)
    assert client.get(ME).status_code == 200  # verified, and remembered
    past_expiry = timezone.now() + timedelta(seconds=access.lifetime.total_seconds() + 1)
    monkeypatch.setattr("rest_framework_simplejwt.tokens.aware_utcnow", lambda: past_expiry)
    assert client.get(ME).status_code == 401


@pytest.mark.parametrize("part", [0, 1, 2], ids=["header", "payload", "signature"])
def test_a_remembered_token_with_one_byte_changed_is_verified_afresh(user, login, client_for, part):
    access = str(login(user).access)
    assert client_for(access).get(ME).status_code == 200
    segments = access.split(".")
    segments[part] = segments[part][:-2] + ("A" if segments[part][-2] != "A" else "B") + segments[part][-1]
    assert client_for(".".join(segments)).get(ME).status_code == 401


@pytest.mark.redis  # the process's session cache is kept coherent through Redis
def test_me_costs_one_query_cold_and_none_warm(user, login, client_for, django_assert_num_queries):
    client = client_for(login(user).access)
    with django_assert_num_queries(1):
        assert client.get(ME).status_code == 200
    with django_assert_num_queries(0):
        assert client.get(ME).status_code == 200


def test_me_without_session_cache_costs_one_query_every_time(
    settings, user, login, client_for, django_assert_num_queries
):
    settings.AUTH_CACHE_ENTRIES = 0
    client = client_for(login(user).access)
    for _ in range(2):
        with django_assert_num_queries(1):
            assert client.get(ME).status_code == 200


@pytest.mark.redis
def test_last_seen_is_written_at_most_once_a_minute(user, login, client_for, django_assert_num_queries):
    pair = login(user)
    client = client_for(pair.access)
    AuthSession.objects.update(last_seen=AuthSession.objects.get().last_seen - timedelta(minutes=5))
    with django_assert_num_queries(2):  # the session lookup and one conditional UPDATE
        client.get(ME)
    with django_assert_num_queries(0):
        client.get(ME)
    session = AuthSession.objects.get()
    assert session.last_seen > session.created_at


def test_refreshing_past_the_absolute_session_lifetime_is_401(api_client, user, login, settings):
    """However fresh the refresh token, a session ends SESSION_MAX_AGE_DAYS after its login."""
    assert settings.SESSION_MAX_AGE_DAYS == 30
    pair = login(user)
    session = AuthSession.objects.get(pk=pair.refresh.session_id)
    logged_in = timezone.now() - timedelta(days=29, hours=23)
    AuthSession.objects.filter(pk=session.pk).update(created_at=logged_in)

    response = api_client.post(REFRESH, {"refresh_token": str(pair.refresh)}, format="json")
    assert response.status_code == 200
    # The session (and its refresh tokens' records) now ends at the absolute limit, not a refresh lifetime away.
    session.refresh_from_db()
    assert session.expires_at == logged_in + timedelta(days=30)

    AuthSession.objects.filter(pk=session.pk).update(
        created_at=timezone.now() - timedelta(days=30, seconds=1), expires_at=timezone.now() + timedelta(days=7)
    )
    response = api_client.post(REFRESH, {"refresh_token": response.json()["refresh_token"]}, format="json")
    assert response.status_code == 401


def test_the_absolute_session_lifetime_is_a_setting(api_client, user, login, settings):
    settings.SESSION_MAX_AGE_DAYS = 1
    pair = login(user)
    AuthSession.objects.filter(pk=pair.refresh.session_id).update(created_at=timezone.now() - timedelta(days=1))
    assert api_client.post(REFRESH, {"refresh_token": str(pair.refresh)}, format="json").status_code == 401
