"""The API key endpoints: create, list, detail, revoke; ownership; what is never returned or stored."""

import re
import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections, connection
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from apikeys import keys, services
from apikeys.models import APIKey
from apikeys.tests.factories import APIKeyFactory

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/auth/api-keys"
PROTECTED = "/api/v1/hello/protected"
LIST_FIELDS = {
    "id",
    "name",
    "prefix",
    "is_active",
    "created_at",
    "last_used",
    "expires_at",
    "revoked_at",
    "last_used_ip",
    "scopes",
}


def key_client(plaintext):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=plaintext)
    return client


def all_text_in(response) -> str:
    return response.content.decode() + " ".join(f"{k}: {v}" for k, v in response.headers.items())


# CREATE
# ------------------------------------------------------------------------------


def test_create_returns_the_key_once_and_it_works(auth_client, user):
    response = auth_client.post(KEYS, {"name": "deploy bot"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "api_key", "prefix", "created_at", "expires_at", "scopes"}
    assert body["name"] == "deploy bot" and body["expires_at"] is None
    assert re.fullmatch(keys.KEY_REGEX, body["api_key"])
    assert body["api_key"].startswith(body["prefix"]) and len(body["prefix"]) == 11
    assert response.headers["Cache-Control"] == "no-store"

    stored = APIKey.objects.get(pk=body["id"])
    assert stored.owner == user and stored.key_hash == keys.hash_key(body["api_key"])
    assert key_client(body["api_key"]).get(PROTECTED).json()["user_id"] == user.pk
    # Shown once: no later response carries it.
    assert body["api_key"] not in all_text_in(auth_client.get(KEYS))
    assert body["api_key"] not in all_text_in(auth_client.get(f"{KEYS}/{body['id']}"))


def test_create_with_expiry(auth_client):
    before = timezone.now()
    body = auth_client.post(KEYS, {"name": "ci", "expires_days": 30}, format="json").json()
    expires_at = APIKey.objects.get(pk=body["id"]).expires_at
    assert before + timedelta(days=30) <= expires_at <= timezone.now() + timedelta(days=30)
    assert body["expires_at"] is not None


def test_create_with_null_expiry_never_expires(auth_client):
    response = auth_client.post(KEYS, {"name": "ci", "expires_days": None}, format="json")
    assert response.status_code == 201 and response.json()["expires_at"] is None


@pytest.mark.parametrize(
    "payload,field",
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "ci", "expires_days": 0}, "expires_days"),
        ({"name": "ci", "expires_days": -5}, "expires_days"),
        ({"name": "ci", "expires_days": 3651}, "expires_days"),
        ({"name": "ci", "expires_days": "soon"}, "expires_days"),
        ({"name": "ci", "expires_days": 1.5}, "expires_days"),
        ({"name": "ci", "expires_days": 10**30}, "expires_days"),
        ({"name": ["a", "b"]}, "name"),
    ],
)
def test_create_rejects_bad_input_with_field_messages(auth_client, payload, field):
    response = auth_client.post(KEYS, payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not APIKey.objects.exists()


def test_create_rejects_a_body_that_is_not_an_object(auth_client):
    response = auth_client.post(KEYS, "[1, 2]", content_type="application/json")
    assert response.status_code == 400
    response = auth_client.post(KEYS, "{not json", content_type="application/json")
    assert response.status_code == 400


def test_create_and_revoke_with_an_api_key_are_forbidden(user):
    key = APIKeyFactory(owner=user)
    client = key_client(key.plaintext)

    response = client.post(KEYS, {"name": "minted by a key"}, format="json")
    assert response.status_code == 403
    assert APIKey.objects.filter(owner=user).count() == 1

    assert client.delete(f"{KEYS}/{key.pk}").status_code == 403
    assert APIKey.objects.get(pk=key.pk).revoked_at is None


def test_create_and_revoke_with_a_bearer_api_key_are_forbidden_too(user, client_for):
    key = APIKeyFactory(owner=user)
    client = client_for(key.plaintext)
    assert client.post(KEYS, {"name": "x"}, format="json").status_code == 403
    assert client.delete(f"{KEYS}/{key.pk}").status_code == 403


def test_create_and_revoke_with_a_session_cookie_are_forbidden(user):
    key = APIKeyFactory(owner=user)
    client = APIClient(enforce_csrf_checks=False)
    client.force_login(user)
    assert client.get(KEYS).status_code == 200
    assert client.post(KEYS, {"name": "x"}, format="json").status_code == 403
    assert client.delete(f"{KEYS}/{key.pk}").status_code == 403


def test_anonymous_requests_are_401(api_client, user):
    key = APIKeyFactory(owner=user)
    for response in (
        api_client.get(KEYS),
        api_client.post(KEYS, {"name": "x"}, format="json"),
        api_client.get(f"{KEYS}/{key.pk}"),
        api_client.delete(f"{KEYS}/{key.pk}"),
    ):
        assert response.status_code == 401 and "WWW-Authenticate" in response.headers


@override_settings(API_KEYS_MAX_ACTIVE_PER_USER=3)
def test_active_key_cap_answers_400_with_a_clear_message(auth_client, user):
    for n in range(3):
        assert auth_client.post(KEYS, {"name": f"k{n}"}, format="json").status_code == 201
    response = auth_client.post(KEYS, {"name": "one too many"}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "You already have 3 active API keys, the most allowed. Revoke one you no longer use first.",
        "code": "key_limit_reached",
    }
    # Revoked and expired keys do not count.
    first, second = APIKey.objects.filter(owner=user).order_by("id")[:2]
    services.api_key_revoke(key=first)
    APIKey.objects.filter(pk=second.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert auth_client.post(KEYS, {"name": "k3"}, format="json").status_code == 201
    assert auth_client.post(KEYS, {"name": "k4"}, format="json").status_code == 201
    assert auth_client.post(KEYS, {"name": "k5"}, format="json").status_code == 400


@override_settings(API_KEYS_MAX_ACTIVE_PER_USER=1)
def test_cap_is_per_user(auth_client, other_user):
    APIKeyFactory(owner=other_user)
    assert auth_client.post(KEYS, {"name": "mine"}, format="json").status_code == 201


@override_settings(API_KEYS_MAX_ACTIVE_PER_USER=0)
def test_cap_zero_means_no_cap(user):
    for _ in range(30):
        services.api_key_create(user=user, name="k")
    assert APIKey.objects.filter(owner=user).count() == 30


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@override_settings(API_KEYS_MAX_ACTIVE_PER_USER=3)
def test_cap_holds_under_concurrent_creation(user):
    barrier = threading.Barrier(8)
    outcomes = []

    def create(n):
        try:
            barrier.wait()
            services.api_key_create(user=user, name=f"race {n}")
            outcomes.append("created")
        except services.KeyLimitReached:
            outcomes.append("refused")
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created"] * 3 + ["refused"] * 5
    assert APIKey.objects.filter(owner=user).count() == 3


# LIST AND DETAIL
# ------------------------------------------------------------------------------


def test_list_shows_own_keys_newest_first_without_key_or_hash(auth_client, user, other_user):
    mine = [APIKeyFactory(owner=user, name=f"mine {n}") for n in range(3)]
    theirs = APIKeyFactory(owner=other_user)
    response = auth_client.get(KEYS)
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"next", "previous", "results"}
    assert [k["id"] for k in body["results"]] == [k.pk for k in reversed(mine)]
    for item in body["results"]:
        assert set(item) == LIST_FIELDS
        assert item["is_active"] is True
    text = all_text_in(response)
    for key in [*mine, theirs]:
        assert key.plaintext not in text
        assert key.plaintext[keys.DISPLAY_PREFIX_LENGTH :] not in text
        assert key.key_hash not in text
    assert theirs.prefix not in text


def test_list_query_count_does_not_grow_with_keys(auth_client, user, django_assert_max_num_queries):
    for n in range(20):
        APIKeyFactory(owner=user, name=f"k{n}")
    auth_client.get(KEYS)  # warm: the session's last_seen write
    # session lookup (cached after the first request), count, page.
    with django_assert_max_num_queries(3):
        response = auth_client.get(f"{KEYS}?page_size=100")
    assert len(response.json()["results"]) == 20


def test_list_shows_derived_is_active(auth_client, user):
    active = APIKeyFactory(owner=user)
    revoked = APIKeyFactory(owner=user)
    expired = APIKeyFactory(owner=user, expires_days=1)
    services.api_key_revoke(key=revoked)
    APIKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    states = {k["id"]: k["is_active"] for k in auth_client.get(KEYS).json()["results"]}
    assert states == {active.pk: True, revoked.pk: False, expired.pk: False}


def test_list_is_paginated(auth_client, user):
    for n in range(5):
        APIKeyFactory(owner=user, name=f"k{n}")
    page = auth_client.get(f"{KEYS}?page_size=2").json()
    assert len(page["results"]) == 2 and page["next"] is not None


def test_detail_of_own_key(auth_client, user):
    key = APIKeyFactory(owner=user, name="ci")
    key_client(key.plaintext).get(PROTECTED, REMOTE_ADDR="192.0.2.44")
    body = auth_client.get(f"{KEYS}/{key.pk}").json()
    assert set(body) == LIST_FIELDS
    assert body["name"] == "ci" and body["prefix"] == key.prefix
    assert body["last_used"] is not None and body["last_used_ip"] == "192.0.2.44"


# OWNERSHIP: ANOTHER USER'S KEY IS A 404
# ------------------------------------------------------------------------------


def test_user_b_cannot_see_or_revoke_user_as_keys(user, other_user, login, client_for):
    alices = APIKeyFactory(owner=user)
    bob = client_for(login(other_user).access)
    assert bob.get(f"{KEYS}/{alices.pk}").status_code == 404
    assert bob.delete(f"{KEYS}/{alices.pk}").status_code == 404
    assert bob.get(KEYS).json()["results"] == []
    assert APIKey.objects.get(pk=alices.pk).revoked_at is None
    assert key_client(alices.plaintext).get(PROTECTED).status_code == 200


def test_user_b_with_an_api_key_cannot_see_user_as_keys(user, other_user):
    alices = APIKeyFactory(owner=user)
    bobs = APIKeyFactory(owner=other_user)
    assert key_client(bobs.plaintext).get(f"{KEYS}/{alices.pk}").status_code == 404


@pytest.mark.parametrize("bad_id", ["abc", "0", "999999", "99999999999999999999999", "-1", "1.0"])
def test_unknown_or_malformed_ids_are_404(auth_client, bad_id):
    assert auth_client.get(f"{KEYS}/{bad_id}").status_code == 404
    assert auth_client.delete(f"{KEYS}/{bad_id}").status_code == 404


# REVOKE
# ------------------------------------------------------------------------------


def test_revoke_keeps_the_key_inactive_and_rejects_it_from_then_on(auth_client, user):
    key = APIKeyFactory(owner=user)
    client = key_client(key.plaintext)
    assert client.get(PROTECTED).status_code == 200

    response = auth_client.delete(f"{KEYS}/{key.pk}")
    assert response.status_code == 204

    assert client.get(PROTECTED).status_code == 401
    body = auth_client.get(f"{KEYS}/{key.pk}").json()
    assert body["is_active"] is False and body["revoked_at"] is not None
    # Revoking again changes nothing.
    revoked_at = APIKey.objects.get(pk=key.pk).revoked_at
    assert auth_client.delete(f"{KEYS}/{key.pk}").status_code == 204
    assert APIKey.objects.get(pk=key.pk).revoked_at == revoked_at


# STORAGE
# ------------------------------------------------------------------------------


def test_database_holds_no_plaintext_key(auth_client):
    created = [auth_client.post(KEYS, {"name": f"k{n}"}, format="json").json()["api_key"] for n in range(3)]
    secrets_ = [key[keys.DISPLAY_PREFIX_LENGTH :] for key in created]
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 (introspected names)
            for row in cursor.fetchall():
                text = " ".join(str(value) for value in row)
                for key, secret in zip(created, secrets_, strict=True):
                    assert key not in text, table
                    assert secret not in text, table
    # The table stores exactly the hash and the display prefix of each.
    rows = set(APIKey.objects.values_list("prefix", "key_hash"))
    assert rows == {(keys.display_prefix(k), keys.hash_key(k)) for k in created}
