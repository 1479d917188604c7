"""What the web answers while a service is down: Redis (cache, throttles), PostgreSQL; and how it recovers.

docs/deployment.md, "Failure modes". The broker's outage is in tasks/tests/test_broker_outage.py.
"""

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, close_old_connections, connection, connections

from config.fallback_cache import request_cache
from config.tests.test_deployment import clean_environment, free_port

pytestmark = pytest.mark.django_db

# Nothing listens on port 1: every connection is refused at once, as when Redis is stopped.
DEAD_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def redis_down(settings):
    """The Django cache and the session/key cache's channel both point at a Redis that refuses connections."""
    settings.REDIS_URL = DEAD_REDIS
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": DEAD_REDIS,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    with pytest.raises(Exception, match="Connection refused"):
        cache.get("anything")  # the premise: the cache itself raises


def login(api_client, password, username="alice"):
    return api_client.post("/api/v1/auth/login", {"username": username, "password": password}, format="json")


# REDIS DOWN ------------------------------------------------------------------------------------------------------


def test_with_redis_down_jwt_and_api_key_authentication_read_the_database(
    redis_down, api_client, client_for, user, password, caplog
):
    caplog.set_level(logging.WARNING)
    assert login(api_client, "wrong password").status_code == 401  # a failed-login budget is spent
    tokens = login(api_client, password).json()
    bearer = client_for(tokens["access_token"])
    assert bearer.get("/api/v1/auth/me").json()["username"] == "alice"

    key = bearer.post("/api/v1/auth/api-keys", {"name": "ci"}, format="json").json()["api_key"]
    by_key = api_client.get("/api/v1/hello/protected", HTTP_X_API_KEY=key)
    assert by_key.status_code == 200 and by_key.json()["user_id"] == user.pk

    refreshed = api_client.post("/api/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]}, format="json")
    assert refreshed.status_code == 200
    renewed = client_for(refreshed.json()["access_token"])
    assert renewed.post("/api/v1/auth/logout").status_code == 204
    # Revocation holds without the cache: the logged-out session is refused, read from the database.
    assert renewed.get("/api/v1/auth/me").status_code == 401
    assert any("counting in this process's memory" in record.getMessage() for record in caplog.records)


def test_with_redis_down_the_throttles_count_in_process_memory_and_still_refuse(
    redis_down, api_client, settings, user, password
):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "login_address": "3/min"},
    }
    assert [login(api_client, password).status_code for _ in range(4)] == [200, 200, 200, 429]
    refused = login(api_client, password)
    assert refused.json()["code"] == "throttled" and int(refused.headers["Retry-After"]) >= 1


def test_with_redis_down_the_failed_login_budget_still_locks_the_guesser_out(
    redis_down, api_client, settings, user, password
):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "login_account_address": "2/h"},
    }
    assert [login(api_client, "guess").status_code for _ in range(3)] == [401, 401, 429]


class CountingBrokenCache:
    """A Django cache whose every call raises as Redis's does when it is down, counting the calls."""

    calls = 0

    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        def broken(*args, **kwargs):
            import redis

            CountingBrokenCache.calls += 1
            raise redis.ConnectionError("down")

        return broken


def test_once_redis_failed_it_is_not_asked_again_for_a_while(monkeypatch):
    """A Redis that hangs costs its socket timeout on each call: after one failure the fallback answers alone."""
    from config import fallback_cache

    CountingBrokenCache.calls = 0
    monkeypatch.setattr(fallback_cache, "caches", {"default": CountingBrokenCache()})
    fallback = fallback_cache.FallbackCache(retry_seconds=60)
    fallback.set("k", 1, 60)
    assert (fallback.get("k"), fallback.add("k", 2, 60), CountingBrokenCache.calls) == (1, False, 1)

    fallback = fallback_cache.FallbackCache(retry_seconds=0)  # retried at once: every call asks Redis first
    fallback.set("k", 1, 60)
    fallback.get("k")
    assert CountingBrokenCache.calls == 3


def test_with_redis_back_the_counters_are_shared_again(settings):
    """The fallback is for the outage only: with Redis answering, a count is in the shared cache."""
    request_cache.set("throttle_probe", [1.0], 60)
    assert cache.get("throttle_probe") == [1.0] and request_cache.memory.get("throttle_probe") is None


def test_health_reports_the_cache_down_at_once(redis_down, api_client):
    body = api_client.get("/health").json()
    assert body["status"] == "error" and body["checks"]["cache"] == "error: ConnectionError"
    assert not request_cache.is_down  # the probe asked Redis itself, not the fallback


def test_health_gives_up_on_a_broker_that_never_answers(silent_redis_url, settings, monkeypatch):
    """A frozen Redis accepts the connection and never replies: the probe must answer (503), not hang."""
    from celery import Celery

    from config import health

    app = Celery("gatehouse", set_as_current=False)
    app.conf.broker_url = settings.CELERY_BROKER_URL = silent_redis_url
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)  # Celery prefers it to its setting
    monkeypatch.setattr("config.celery.app", app)
    monkeypatch.setattr(health, "CHECKS", {"broker": health.check_broker})  # no database connection in the thread
    outcome = []
    probe = threading.Thread(target=lambda: outcome.append(health.run_checks()["broker"]), daemon=True)
    probe.start()
    probe.join(timeout=20)
    assert outcome == ["error: OperationalError"]


def test_with_redis_down_an_unverified_login_is_refused_not_a_500(redis_down, api_client, settings, user, password):
    """The refusal that mails a new verification link remembers, in the cache, that it just sent one."""
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    response = login(api_client, password)
    assert (response.status_code, response.json()["code"]) == (403, "email_unverified")


# POSTGRESQL DOWN -------------------------------------------------------------------------------------------------


def terminate_backend(pid: int) -> None:
    """What a PostgreSQL restart does to an open connection, from another connection."""
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()


@pytest.fixture
def api_key(user):
    from apikeys.services import api_key_create

    return api_key_create(user=user, name="outage", expires_days=None)[1]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_request_whose_database_connection_broke_answers_503_json_with_retry_after(api_client, api_key):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        terminate_backend(cursor.fetchone()[0])

    response = api_client.get("/api/v1/hello/protected", HTTP_X_API_KEY=api_key)
    assert response.status_code == 503
    assert response.json() == {
        "detail": "The database is unavailable; try again shortly.",
        "code": "database_unavailable",
    }
    assert response.headers["Retry-After"] == "5"
    close_old_connections()  # Django's handler does it as the request ends; the test client leaves it out
    assert api_client.get("/api/v1/hello/protected", HTTP_X_API_KEY=api_key).status_code == 200


@contextlib.contextmanager
def production_server(tmp_path, database_url: str):
    """gunicorn with the production settings and one worker, as the web container runs it; yields a GET function."""
    port = free_port()
    env = clean_environment(
        tmp_path,
        SECRET_KEY="test-" + "x" * 50,
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false",
        DATABASE_URL=database_url,
        REDIS_URL=os.environ.get("REDIS_URL", ""),
        GUNICORN_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="1",
    )
    log_path = tmp_path / "web.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def get(path: str, **headers) -> tuple[int, dict, dict]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310 - a local http URL
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.loads(error.read())

    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            with contextlib.suppress(OSError):
                if get("/health/live")[0] == 200:
                    break
            time.sleep(0.2)
        yield get
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)


def web_backends(application_name: str) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [application_name])
        return [pid for (pid,) in cursor.fetchall()]


def database_url_for(application_name: str) -> str:
    database = connection.settings_dict
    return f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}?application_name={application_name}"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_production_web_survives_a_database_restart_without_a_restart_of_its_own(tmp_path, api_key):
    """CONN_MAX_AGE keeps the worker's connection open across requests; CONN_HEALTH_CHECKS finds it dead after
    PostgreSQL dropped it (as a restart does), so the next request reconnects instead of failing."""
    name = f"gatehouse-outage-{os.getpid()}"
    with production_server(tmp_path, database_url_for(name)) as get:
        # A list reads the database on every request (the key itself may come from the process's cache).
        assert get("/api/v1/auth/api-keys", **{"X-API-Key": api_key})[0] == 200
        (before,) = web_backends(name)  # kept open after the request
        terminate_backend(before)

        status, _, body = get("/api/v1/auth/api-keys", **{"X-API-Key": api_key})
        assert (status, len(body["results"])) == (200, 1)
        (after,) = web_backends(name)
        assert after != before


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_production_web_with_the_database_down_answers_503_and_health_says_so(tmp_path, api_key):
    unreachable = f"postgres://postgres@127.0.0.1:{free_port()}/gatehouse"  # nothing listens there
    with production_server(tmp_path, unreachable) as get:
        status, headers, body = get("/api/v1/hello/protected", **{"X-API-Key": api_key})
        assert (status, body["code"], headers["Retry-After"]) == (503, "database_unavailable", "5")
        status, _, body = get("/health")
        assert status == 503 and body["checks"]["database"] == "error: OperationalError"
