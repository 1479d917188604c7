"""X-API-Key authentication: where keys work, and every way they fail."""

import dataclasses
from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services as account_services
from apikeys import keys, services
from apikeys.services import KeyState
from apikeys.tests.factories import (
    KEYS,
    ME,
    PROTECTED,
    VALIDATE,
    APIKeyFactory,
    assert_rejected,
    bad_checksum,
    x_api_key,
)

pytestmark = pytest.mark.django_db


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
    assert isinstance(auth, KeyState) and auth.pk == api_key.pk
    assert auth.scheme == "api_key" and auth.scopes == tuple(api_key.scopes)
    with pytest.raises(dataclasses.FrozenInstanceError):  # shared by the process's requests: nobody changes it
        auth.revoked_at = None


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


MALFORMED = {
    "bad checksum": lambda key: bad_checksum(key),
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


def test_expired_key_is_rejected(key_client, user, monkeypatch):
    key = APIKeyFactory(owner=user, expires_days=1)
    client = key_client(key.plaintext)
    assert client.get(PROTECTED).status_code == 200  # the key is now cached in this process
    a_day_later = timezone.now() + timedelta(days=1, seconds=1)
    monkeypatch.setattr("apikeys.models.timezone.now", lambda: a_day_later)
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


def test_reactivated_owner_does_not_get_the_old_keys_back(api_key, user):
    # Deactivation revokes the keys (issue 14): one that leaked with the account must not return with it.
    account_services.user_deactivate(user=user)
    account_services.user_update(user=user, is_active=True)
    assert_rejected(x_api_key(api_key.plaintext).get(PROTECTED))


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
        HTTP_AUTHORIZATION=f"Bearer {login(user).access}", HTTP_X_API_KEY=bad_checksum(api_key.plaintext)
    )
    assert_rejected(client.get(PROTECTED))


def test_a_key_of_another_user_authenticates_as_that_user_not_as_the_jwt_holder(user, other_user, login):
    bobs_key = APIKeyFactory(owner=other_user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {login(user).access}", HTTP_X_API_KEY=bobs_key.plaintext)
    assert client.get(PROTECTED).json()["user_id"] == other_user.pk
