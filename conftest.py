"""Fixtures shared by every app's tests, and the service markers.

A test that needs a real service carries its marker (postgres, redis, worker, browser, client).
Where the service is missing it is skipped with the reason; with
GATEHOUSE_REQUIRE_SERVICES=1 (set by CI) the same test fails instead, so CI never
passes on skipped work.
"""

import os
import shutil
import socket

import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts import services as account_services
from accounts.models import User
from config.fallback_cache import request_cache
from config.local_cache import auth_cache

TEST_PASSWORD = "correct horse battery staple"

# Fixtures an app owns and other apps' tests use too, found by name: real Celery worker and
# beat processes (start_worker, start_beat), the local test website (local_site) and language-model server (llm_server),
# the local SMTP server (smtp_server, smtp_mail) and the in-process job runner (run_jobs).
pytest_plugins = [
    "tasks.tests.worker",
    "tasks.tests.site_server",
    "tasks.tests.llm_server",
    "accounts.tests.mail_server",
]


def _postgres_missing():
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        return "needs PostgreSQL: set DATABASE_URL=postgres://..."
    return None


def _redis_missing():
    url = os.environ.get("REDIS_URL")
    if not url:
        return "needs Redis: set REDIS_URL=redis://..."
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        return f"Redis at {url} does not answer: {error}"
    return None


def _browser_missing():
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
    return None if path else "needs Chromium: install Debian's chromium or set CHROMIUM_PATH"


def _worker_missing():
    # The worker is another process: it must see the test database, which SQLite's
    # in-memory test database is not, and share a broker with the test process that
    # nothing else consumes (not the development filesystem queue under var/).
    problem = _postgres_missing()
    if problem:
        return problem
    url = os.environ.get("CELERY_BROKER_URL", "")
    if not url.startswith(("redis://", "rediss://")):
        return "needs a Redis broker for the test worker: set CELERY_BROKER_URL=redis://..."
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        return f"Redis broker at {url} does not answer: {error}"
    return None


def _client_missing():
    # Makes the generator's venv on first use (var/test-client-venv): a few seconds, once.
    from config.tests import client_venv

    return client_venv.problem()


SERVICE_CHECKS = {
    "postgres": _postgres_missing,
    "redis": _redis_missing,
    "browser": _browser_missing,
    "worker": _worker_missing,
    "client": _client_missing,
}


def pytest_runtest_setup(item):
    for marker, check in SERVICE_CHECKS.items():
        if item.get_closest_marker(marker) is None:
            continue
        reason = check()
        if reason is None:
            continue
        if os.environ.get("GATEHOUSE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"[{marker}] {reason} (GATEHOUSE_REQUIRE_SERVICES=1 forbids skipping)", pytrace=False)
        pytest.skip(f"[{marker}] {reason}")


@pytest.fixture(autouse=True)
def _clear_cache():
    """Throttle counters and cached sessions and keys must not leak from one test into the next (the
    database rolls back, and a rolled-back change publishes no invalidation on commit)."""
    cache.clear()
    auth_cache().clear()
    request_cache.clear()
    yield
    cache.clear()
    auth_cache().clear()
    request_cache.clear()


@pytest.fixture
def silent_redis_url():
    """A Redis URL whose port accepts connections and never answers: a frozen Redis, a half-open connection."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


@pytest.fixture
def media_root(settings, tmp_path):
    """Stored files go to a private temporary MEDIA_ROOT (a worker's VAR_DIR/media)."""
    var_dir = tmp_path / "var"
    (var_dir / "media").mkdir(parents=True)
    settings.MEDIA_ROOT = str(var_dir / "media")
    return var_dir / "media"


@pytest.fixture
def password():
    return TEST_PASSWORD


@pytest.fixture
def make_user(db):
    counter = iter(range(1, 10_000))

    def make(username=None, password=TEST_PASSWORD, **extra):
        n = next(counter)
        username = username or f"user{n}"
        extra.setdefault("email", f"{username}@example.com")
        return User.objects.create_user(username=username, password=password, **extra)

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice", name="Alice")


@pytest.fixture
def other_user(make_user):
    return make_user("bob", name="Bob")


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def login():
    """Log a user in through the service; returns its TokenPair (str(pair.access) is the bearer token)."""

    def do_login(user, password=TEST_PASSWORD):
        return account_services.auth_login(username=user.username, password=password)

    return do_login


@pytest.fixture
def client_for():
    """An APIClient that sends the given bearer token (JWT or API key)."""

    def make(token):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    return make


@pytest.fixture
def auth_client(user, login, client_for):
    """An APIClient authenticated as `user` with a fresh JWT access token."""
    return client_for(login(user).access)
