"""X-API-Key authentication: what a request costs, last use, and a dead database connection."""

import logging
import time
from datetime import timedelta

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.test import override_settings
from django.utils import timezone

from apikeys import keys, services
from apikeys.models import APIKey
from apikeys.tests.factories import (
    PROTECTED,
    APIKeyFactory,
    assert_rejected,
    bad_checksum,
    is_update,
    x_api_key,
)
from config.local_cache import auth_cache

pytestmark = pytest.mark.django_db


# WHAT A REQUEST COSTS, AND LAST USE
# ------------------------------------------------------------------------------


@pytest.mark.redis  # warm requests need the process's key cache, kept coherent through Redis
def test_last_used_is_written_once_for_two_requests_within_a_minute(key_client, api_key, django_assert_num_queries):
    client = key_client(api_key.plaintext)
    assert APIKey.objects.get(pk=api_key.pk).last_used is None
    with django_assert_num_queries(2) as first:  # the lookup, and the one UPDATE of last_used
        assert client.get(PROTECTED, REMOTE_ADDR="203.0.113.7").status_code == 200
    assert is_update(first.captured_queries[1])
    stored = APIKey.objects.get(pk=api_key.pk)
    assert stored.last_used is not None and stored.last_used_ip == "203.0.113.7"

    with django_assert_num_queries(0):  # warm: the key and its last use are in the process's cache
        assert client.get(PROTECTED, REMOTE_ADDR="198.51.100.1").status_code == 200
    again = APIKey.objects.get(pk=api_key.pk)
    assert (again.last_used, again.last_used_ip) == (stored.last_used, "203.0.113.7")


def test_last_used_is_written_again_after_the_resolution(api_key, django_assert_num_queries):
    client = x_api_key(api_key.plaintext)
    client.get(PROTECTED)
    earlier = timezone.now() - timedelta(seconds=61)
    APIKey.objects.filter(pk=api_key.pk).update(last_used=earlier)
    auth_cache().clear()  # as a process that has not seen the key for a minute
    with django_assert_num_queries(2):
        client.get(PROTECTED)
    assert APIKey.objects.get(pk=api_key.pk).last_used > earlier + timedelta(seconds=60)


@pytest.mark.redis
def test_a_key_is_one_query_joined_to_the_owner_cold_and_none_warm(api_key, django_assert_num_queries):
    client = x_api_key(api_key.plaintext)
    client.get(PROTECTED)  # first use writes last_used
    auth_cache().clear()
    with django_assert_num_queries(1) as cold:
        response = client.get(PROTECTED)
    assert response.json()["user_id"] == api_key.owner_id  # the owner came with the key, no second query
    sql = cold.captured_queries[0]["sql"]
    assert "JOIN" in sql and "key_hash" in sql
    with django_assert_num_queries(0):
        assert client.get(PROTECTED).json()["user_id"] == api_key.owner_id


def test_concurrent_writer_loses_the_conditional_update(api_key):
    """The UPDATE re-checks last_used in its WHERE: a request holding a stale row cannot write twice."""
    stale = APIKey.objects.select_related("owner").get(pk=api_key.pk)
    _, fresh = services.api_key_authenticate(raw_key=api_key.plaintext)
    written = APIKey.objects.get(pk=api_key.pk).last_used
    assert fresh.last_used == written
    services._touch(services.KeyState.of(stale), ip_address="192.0.2.1")  # stale: last_used None, the row's not
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
    x_api_key(bad_checksum(key.plaintext)).get(PROTECTED)
    services.api_key_revoke(key=key)
    x_api_key(key.plaintext).get(PROTECTED)
    secret_part = key.plaintext[keys.DISPLAY_PREFIX_LENGTH :]
    for record in caplog.records:
        text = record.getMessage()
        assert secret_part not in text and key.key_hash not in text


# A DEAD PERSISTENT CONNECTION (production: CONN_MAX_AGE + CONN_HEALTH_CHECKS)
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
    auth_cache().clear()  # the lookup must run: Django's health check replaces the dead connection first
    response = client.get(PROTECTED)
    assert response.status_code == 200
    assert persistent_checked_connection.connection.info.backend_pid != dead_pid
    services.api_key_revoke(key=key)
    _next_request(persistent_checked_connection)
    assert_rejected(client.get(PROTECTED))
