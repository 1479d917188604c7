"""X-API-Key authentication: where keys work, every way they fail, and what a request costs."""

import logging
import time
from datetime import datetime, timedelta

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services as account_services
from apikeys import keys, selectors, services
from apikeys.models import APIKey
from apikeys.tests.factories import APIKeyFactory

pytestmark = pytest.mark.django_db

PROTECTED = "/api/v1/hello/protected"
ME = "/api/v1/auth/me"
VALIDATE = "/api/v1/auth/validate"
KEYS = "/api/v1/auth/api-keys"


def x_api_key(key):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    return client


def bearer(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


HEADERS = {"X-API-Key": x_api_key, "Authorization: Bearer": bearer}


@pytest.fixture(params=list(HEADERS), ids=["x-api-key", "bearer"])
def key_client(request):
    """Returns make(key) -> client sending the key in the parametrized header."""
    return HEADERS[request.param]


@pytest.fixture
def api_key(user):
    return APIKeyFactory(owner=user, name="ci")


def is_update(query) -> bool:
    # A prepared statement's text is not captured (psycopg does not expose it): None, never an UPDATE.
    return (query["sql"] or "").startswith("UPDATE")


def assert_rejected(response, detail=None):
    assert response.status_code == 401, response.content
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    if detail:
        assert response.json() == {"detail": detail}


# WHERE A KEY WORKS
# ------------------------------------------------------------------------------


def test_key_authenticates_every_protected_endpoint(key_client, api_key, user):
    client = key_client(api_key.plaintext)

    hello = client.get(PROTECTED)
    assert hello.status_code == 200
    assert hello.json() == {"message": "Hello, alice!", "user_id": user.pk, "protected": True}

    assert client.get(ME).json()["username"] == "alice"
    patched = client.patch(ME, {"name": "Alice Key"}, format="json")
    assert patched.status_code == 200 and patched.json()["name"] == "Alice Key"

    listed = client.get(KEYS)
    assert listed.status_code == 200 and [k["id"] for k in listed.json()["results"]] == [api_key.pk]
    assert client.get(f"{KEYS}/{api_key.pk}").json()["prefix"] == api_key.prefix


def test_validate_reports_the_key_scheme_and_expiry(key_client, user):
    never = APIKeyFactory(owner=user)
    expiring = APIKeyFactory(owner=user, expires_days=30)

    body = key_client(never.plaintext).post(VALIDATE).json()
    assert body == {"valid": True, "user_id": user.pk, "username": "alice", "auth": "api_key", "expires_at": None}

    body = key_client(expiring.plaintext).post(VALIDATE).json()
    assert body["auth"] == "api_key"
    assert body["expires_at"] is not None
    assert abs(datetime.fromisoformat(body["expires_at"]) - expiring.expires_at) < timedelta(seconds=1)


def test_request_user_is_the_owner_and_request_auth_the_key(rf, api_key, user):
    from rest_framework.request import Request

    from apikeys.authentication import APIKeyAuthentication

    request = Request(rf.get(PROTECTED, HTTP_X_API_KEY=api_key.plaintext))
    authenticated_user, auth = APIKeyAuthentication().authenticate(request)
    assert authenticated_user == user
    assert isinstance(auth, APIKey) and auth.pk == api_key.pk
    assert auth.scheme == "api_key"


def test_admin_endpoints_accept_an_admins_key(make_user):
    admin = make_user("root", is_staff=True)
    key = APIKeyFactory(owner=admin)
    assert x_api_key(key.plaintext).get("/api/v1/users").status_code == 200


def test_bearer_scheme_name_is_case_insensitive(api_key):
    for scheme in ("bearer", "BEARER", "Bearer"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"{scheme} {api_key.plaintext}")
        assert client.get(PROTECTED).status_code == 200, scheme


def test_jwt_still_works_beside_the_key_class(auth_client):
    assert auth_client.get(PROTECTED).status_code == 200
    assert auth_client.post(VALIDATE).json()["auth"] == "jwt"


@pytest.mark.parametrize(
    "path,method",
    [
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/auth/logout-all", "post"),
        ("/api/v1/auth/password/change", "post"),
        ("/api/v1/auth/sessions", "get"),
    ],
)
def test_credential_management_endpoints_refuse_a_key(path, method, api_key):
    response = getattr(x_api_key(api_key.plaintext), method)(path, {}, format="json")
    assert response.status_code == 403


# EVERY WAY A KEY FAILS: 401 WITH WWW-AUTHENTICATE, NEVER 5XX
# ------------------------------------------------------------------------------


def _bad_checksum(key: str) -> str:
    last = key[-1]
    return key[:-1] + ("A" if last != "A" else "B")


MALFORMED = {
    "bad checksum": lambda key: _bad_checksum(key),
    "bare prefix": lambda key: "sk_",
    "truncated": lambda key: key[:-1],
    "10 KB": lambda key: "sk_" + "a" * 10_240,
    "non-ASCII": lambda key: key[:20] + "é" + key[21:],
    "non-ASCII only": lambda key: "sk_" + "ключ" * 12 + "\u202e",
    "wrong prefix": lambda key: "pk_" + key[3:],
    "whitespace inside": lambda key: key[:20] + " " + key[21:],
}


@pytest.mark.parametrize("variant", list(MALFORMED))
def test_malformed_keys_are_rejected_without_a_query(variant, key_client, api_key, django_assert_num_queries):
    candidate = MALFORMED[variant](api_key.plaintext)
    with django_assert_num_queries(0):
        response = key_client(candidate).get(PROTECTED)
    assert_rejected(response)


def test_empty_x_api_key_header_is_rejected_without_a_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        response = x_api_key("").get(PROTECTED)
    assert_rejected(response, "Malformed API key.")


def test_empty_bearer_credential_is_rejected(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Bearer ")
    assert_rejected(api_client.get(PROTECTED))


def test_unknown_well_formed_key_costs_one_query(key_client, django_assert_num_queries):
    with django_assert_num_queries(1):
        response = key_client(keys.generate()).get(PROTECTED)
    assert_rejected(response, "Invalid API key.")


def test_revoked_key_is_rejected_at_once(key_client, api_key):
    client = key_client(api_key.plaintext)
    assert client.get(PROTECTED).status_code == 200
    services.api_key_revoke(key=api_key)
    assert_rejected(client.get(PROTECTED), "API key has been revoked.")
    assert_rejected(client.post(VALIDATE))


def test_expired_key_is_rejected(key_client, user):
    key = APIKeyFactory(owner=user, expires_days=1)
    client = key_client(key.plaintext)
    assert client.get(PROTECTED).status_code == 200
    APIKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_rejected(client.get(PROTECTED), "API key has expired.")


def test_keys_of_a_deactivated_owner_fail_at_once(key_client, api_key, user):
    client = key_client(api_key.plaintext)
    assert client.get(PROTECTED).status_code == 200
    account_services.user_deactivate(user=user)
    assert_rejected(client.get(PROTECTED), "Invalid API key.")
    assert_rejected(client.get(ME))


def test_keys_of_an_owner_deactivated_behind_the_services_back_fail_too(api_key, user):
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    assert_rejected(x_api_key(api_key.plaintext).get(PROTECTED))


def test_reactivated_owner_gets_working_keys_back(api_key, user):
    account_services.user_deactivate(user=user)
    account_services.user_update(user=user, is_active=True)
    assert x_api_key(api_key.plaintext).get(PROTECTED).status_code == 200


def test_no_credential_is_401_with_www_authenticate(api_client):
    assert_rejected(api_client.get(PROTECTED))


@pytest.mark.parametrize("param", ["api_key", "apikey", "key", "x-api-key", "X-API-Key", "token", "access_token"])
def test_keys_in_a_query_string_are_never_accepted(param, api_client, api_key):
    assert_rejected(api_client.get(f"{PROTECTED}?{param}={api_key.plaintext}"))
    assert_rejected(api_client.post(f"{VALIDATE}?{param}={api_key.plaintext}"))


def test_key_in_a_form_body_is_not_accepted(api_client, api_key):
    assert_rejected(api_client.post(VALIDATE, {"api_key": api_key.plaintext, "X-API-Key": api_key.plaintext}))


def test_an_invalid_key_is_not_rescued_by_a_valid_jwt(user, login, api_key):
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {login(user).access}", HTTP_X_API_KEY=_bad_checksum(api_key.plaintext)
    )
    assert_rejected(client.get(PROTECTED))


def test_a_key_of_another_user_authenticates_as_that_user_not_as_the_jwt_holder(user, other_user, login):
    bobs_key = APIKeyFactory(owner=other_user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {login(user).access}", HTTP_X_API_KEY=bobs_key.plaintext)
    assert client.get(PROTECTED).json()["user_id"] == other_user.pk


# WHAT A REQUEST COSTS, AND LAST USE
# ------------------------------------------------------------------------------


def test_last_used_is_written_once_for_two_requests_within_a_minute(key_client, api_key, django_assert_num_queries):
    client = key_client(api_key.plaintext)
    assert APIKey.objects.get(pk=api_key.pk).last_used is None
    with django_assert_num_queries(2) as first:  # the lookup, and the one UPDATE of last_used
        assert client.get(PROTECTED, REMOTE_ADDR="203.0.113.7").status_code == 200
    assert is_update(first.captured_queries[1])
    stored = APIKey.objects.get(pk=api_key.pk)
    assert stored.last_used is not None and stored.last_used_ip == "203.0.113.7"

    with django_assert_num_queries(1) as second:  # the lookup only
        assert client.get(PROTECTED, REMOTE_ADDR="198.51.100.1").status_code == 200
    assert not is_update(second.captured_queries[0])
    again = APIKey.objects.get(pk=api_key.pk)
    assert (again.last_used, again.last_used_ip) == (stored.last_used, "203.0.113.7")


def test_last_used_is_written_again_after_the_resolution(api_key, django_assert_num_queries):
    client = x_api_key(api_key.plaintext)
    client.get(PROTECTED)
    earlier = timezone.now() - timedelta(seconds=61)
    APIKey.objects.filter(pk=api_key.pk).update(last_used=earlier)
    with django_assert_num_queries(2):
        client.get(PROTECTED)
    assert APIKey.objects.get(pk=api_key.pk).last_used > earlier + timedelta(seconds=60)


def test_authenticating_with_a_key_is_one_query_joined_to_the_owner(api_key, django_assert_num_queries):
    client = x_api_key(api_key.plaintext)
    client.get(PROTECTED)  # first use writes last_used
    with django_assert_num_queries(1):
        response = client.get(PROTECTED)
    assert response.json()["user_id"] == api_key.owner_id  # the owner came with the key, no second query
    sql = selectors._CompiledLookup(DEFAULT_DB_ALIAS).sql
    assert "JOIN" in sql and '"key_hash" = %s' in sql


@pytest.mark.postgres
def test_on_postgresql_the_lookup_is_a_prepared_statement(api_key):
    x_api_key(api_key.plaintext).get(PROTECTED)
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        statements = [row[0] for row in cursor.fetchall()]
    assert any("apikeys_apikey" in statement and "key_hash" in statement for statement in statements)


@pytest.mark.postgres
@override_settings(API_KEYS_PREPARED_LOOKUP=False)
def test_the_unprepared_lookup_works_too(api_key, django_assert_num_queries):
    client = x_api_key(api_key.plaintext)
    client.get(PROTECTED)
    with django_assert_num_queries(1):
        assert client.get(PROTECTED).status_code == 200
    services.api_key_revoke(key=api_key)
    assert_rejected(client.get(PROTECTED))


def test_concurrent_writer_loses_the_conditional_update(api_key):
    """The UPDATE re-checks last_used in its WHERE: a request holding a stale row cannot write twice."""
    stale = APIKey.objects.select_related("owner").get(pk=api_key.pk)
    fresh = services.api_key_authenticate(raw_key=api_key.plaintext)
    written = APIKey.objects.get(pk=api_key.pk).last_used
    assert fresh.last_used == written
    services._touch(stale, ip_address="192.0.2.1")  # stale.last_used is None, but the row's is not
    assert APIKey.objects.get(pk=api_key.pk).last_used == written


@override_settings(REST_FRAMEWORK={"NUM_PROXIES": 1})
def test_forged_forwarded_address_is_not_stored_and_never_500s(api_key):
    from rest_framework.settings import api_settings

    api_settings.reload()
    try:
        response = x_api_key(api_key.plaintext).get(PROTECTED, HTTP_X_FORWARDED_FOR="not-an-address")
    finally:
        api_settings.reload()
    assert response.status_code == 200
    assert APIKey.objects.get(pk=api_key.pk).last_used_ip is None


def test_nothing_logged_carries_the_key_or_its_hash(caplog, user):
    caplog.set_level(logging.DEBUG)
    key = APIKeyFactory(owner=user)
    x_api_key(key.plaintext).get(PROTECTED)
    x_api_key(_bad_checksum(key.plaintext)).get(PROTECTED)
    services.api_key_revoke(key=key)
    x_api_key(key.plaintext).get(PROTECTED)
    secret_part = key.plaintext[keys.DISPLAY_PREFIX_LENGTH :]
    for record in caplog.records:
        text = record.getMessage()
        assert secret_part not in text and key.key_hash not in text


# THE LOOKUP AS THE CONNECTION HEALTH CHECK (production: CONN_MAX_AGE + CONN_HEALTH_CHECKS)
# ------------------------------------------------------------------------------


@pytest.fixture
def persistent_checked_connection(monkeypatch):
    """The default connection configured as production configures it, freshly opened."""
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 600)
    monkeypatch.setitem(connection.settings_dict, "CONN_HEALTH_CHECKS", True)
    connection.close()
    connection.ensure_connection()
    yield connection
    connection.close()


def _next_request(conn):
    # What Django's request_started/request_finished handler does between two requests.
    conn.close_if_unusable_or_obsolete()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_healthy_reused_connection_costs_no_extra_health_check_round_trip(
    persistent_checked_connection, user, monkeypatch
):
    key = APIKeyFactory(owner=user)
    client = x_api_key(key.plaintext)
    client.get(PROTECTED)
    checks = []
    real_is_usable = persistent_checked_connection.is_usable
    monkeypatch.setattr(persistent_checked_connection, "is_usable", lambda: checks.append(1) or real_is_usable())
    for _ in range(3):
        _next_request(persistent_checked_connection)
        assert not persistent_checked_connection.health_check_done
        assert client.get(PROTECTED).status_code == 200
        assert persistent_checked_connection.health_check_done  # later queries of the request skip it too
    assert checks == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_dead_persistent_connection_is_replaced_and_the_request_succeeds(persistent_checked_connection, user):
    key = APIKeyFactory(owner=user)
    client = x_api_key(key.plaintext)
    assert client.get(PROTECTED).status_code == 200
    dead_pid = persistent_checked_connection.connection.info.backend_pid

    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [dead_pid])
            for _ in range(100):
                cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [dead_pid])
                if cursor.fetchone() is None:
                    break
                time.sleep(0.05)
    finally:
        other.close()

    _next_request(persistent_checked_connection)
    response = client.get(PROTECTED)
    assert response.status_code == 200
    assert persistent_checked_connection.connection.info.backend_pid != dead_pid
    services.api_key_revoke(key=key)
    _next_request(persistent_checked_connection)
    assert_rejected(client.get(PROTECTED))
