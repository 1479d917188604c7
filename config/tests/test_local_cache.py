"""The per-process cache kept coherent through Redis pub/sub (config/local_cache.py).

Two CoherentCache objects on one channel stand for two processes: each has its own connection and
its own entries, exactly as two gunicorn workers do.
"""

import copy
import dataclasses
import logging
import os
import socket

import pytest
import redis

from accounts.models import AuthSession
from config.local_cache import CoherentCache, auth_cache

pytestmark = [pytest.mark.redis, pytest.mark.django_db]  # invalidate() also runs on commit

ME = "/api/v1/auth/me"


@pytest.fixture
def channel(request):
    return f"gatehouse:test:{request.node.name}:{os.getpid()}"


@pytest.fixture
def make_cache(settings, channel):
    made = []

    def make(max_entries=100):
        cache = CoherentCache(redis_url=settings.REDIS_URL, max_entries=max_entries, channel=channel)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.clear()


def _fill(cache, key, value, *tags):
    found, stamp = cache.get(key)
    assert found is None
    cache.put(key, value, tags=tags, stamp=stamp, copy=copy.deepcopy)


def test_an_invalidation_reaches_another_process_before_its_very_next_lookup(make_cache):
    worker_a, worker_b = make_cache(), make_cache()
    _fill(worker_a, "session:1", {"revoked": False}, "user:7")
    _fill(worker_a, "session:2", {"revoked": False}, "user:8")
    assert worker_a.get("session:1")[0] == {"revoked": False}

    worker_b.invalidate(["user:7"])  # no wait, no sleep: the next lookup already sees it
    assert worker_a.get("session:1")[0] is None
    assert worker_a.get("session:2")[0] == {"revoked": False}  # other users' entries stay


def test_a_read_that_raced_an_invalidation_is_not_kept(make_cache):
    worker_a, worker_b = make_cache(), make_cache()
    found, stamp = worker_a.get("session:1")  # a miss: the row is read from the database...
    worker_b.invalidate(["user:7"])  # ...while another process revokes it
    worker_a.put("session:1", {"revoked": False}, tags=["user:7"], stamp=stamp, copy=copy.deepcopy)
    assert worker_a.get("session:1")[0] is None  # the old row was not kept


def test_values_are_copied_in_and_out(make_cache):
    cache = make_cache()
    value = {"is_staff": True}
    _fill(cache, "k", value, "user:1")
    value["is_staff"] = False
    got = cache.get("k")[0]
    assert got == {"is_staff": True}
    got["is_staff"] = False  # a view changing what it got, then failing before its save
    assert cache.get("k")[0] == {"is_staff": True}


def test_the_oldest_entries_go_beyond_the_limit(make_cache):
    cache = make_cache(max_entries=2)
    _fill(cache, "a", 1, "user:1")
    _fill(cache, "b", 2, "user:1")
    assert cache.get("a")[0] == 1  # a is now the most recently used
    _fill(cache, "c", 3, "user:2")
    assert (cache.get("a")[0], cache.get("b")[0], cache.get("c")[0]) == (1, None, 3)


def test_a_lost_channel_empties_the_cache_and_it_comes_back(make_cache, settings):
    cache = make_cache()
    _fill(cache, "k", 1, "user:1")
    admin = redis.Redis.from_url(settings.REDIS_URL)
    killed = admin.client_kill_filter(_type="pubsub", skipme=True)
    assert killed >= 1
    # Messages sent while the connection was down are lost: nothing from before may be served.
    assert cache.get("k") == (None, None)
    cache._retry_at = 0  # skip the one-second pause between reconnection attempts
    found, stamp = cache.get("k")
    assert found is None and stamp is not None  # subscribed again, empty
    cache.put("k", 2, tags=["user:1"], stamp=stamp, copy=copy.deepcopy)
    make_cache().invalidate(["user:1"])
    assert cache.get("k")[0] is None  # and invalidations arrive again


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_without_redis_every_lookup_misses_and_nothing_raises(channel):
    cache = CoherentCache(redis_url=f"redis://127.0.0.1:{_closed_port()}/0", max_entries=100, channel=channel)
    assert cache.get("k") == (None, None)
    cache.put("k", 1, tags=["user:1"], stamp=None, copy=copy.deepcopy)
    cache.invalidate(["user:1"])  # logged, not raised: the change itself is committed
    assert cache.get("k") == (None, None)


def test_an_outage_is_logged_once_not_at_every_retry(channel, caplog):
    cache = CoherentCache(redis_url=f"redis://127.0.0.1:{_closed_port()}/0", max_entries=100, channel=channel)
    for _ in range(5):
        cache._retry_at = 0  # retry at every lookup, as a busy process does once a second
        assert cache.get("k") == (None, None)
    warnings = [r for r in caplog.records if r.name == "config.local_cache" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].exc_info is not None


def test_a_forked_child_starts_empty(make_cache, monkeypatch):
    cache = make_cache()
    _fill(cache, "k", 1, "user:1")
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as in a gunicorn worker forked after the parent cached
    found, stamp = cache.get("k")
    assert found is None and stamp is not None


def test_authentication_reads_the_database_while_redis_is_unreachable(
    settings, user, login, client_for, django_assert_num_queries
):
    client = client_for(login(user).access)
    settings.REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"  # the auth cache's Redis only
    for _ in range(2):
        with django_assert_num_queries(1):  # no cache: the session query every time, and no error
            assert client.get(ME).status_code == 200
    AuthSession.objects.update(revoked_at="2000-01-01T00:00:00Z")
    assert client.get(ME).status_code == 401


def test_cached_sessions_are_private_copies(user, login, client_for):
    client = client_for(login(user).access)
    assert client.get(ME).status_code == 200
    (session_key,) = [key for key in auth_cache()._entries if key[0] == "session"]
    (session, first_user), _ = auth_cache().get(session_key)
    first_user.is_staff = True  # changed in one request, never saved
    (same_session, second_user), _ = auth_cache().get(session_key)
    assert second_user.is_staff is False and second_user is not first_user
    assert second_user._state is not first_user._state and second_user._state.db == first_user._state.db
    # The session part is frozen, so it is shared rather than copied.
    assert same_session is session
    with pytest.raises(dataclasses.FrozenInstanceError):
        session.revoked_at = None
