"""Dependency checks behind GET /health. Each returns None when healthy, else a short reason."""

import logging
import os
import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import connection

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 1


def check_database() -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return None


def check_cache() -> str | None:
    key = f"health:{uuid.uuid4().hex}"
    cache.set(key, "ok", timeout=10)
    value = cache.get(key)
    cache.delete(key)
    return None if value == "ok" else "cache did not return the value just written"


def check_broker() -> str | None:
    if settings.CELERY_BROKER_URL == "filesystem://":
        queue = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
        return None if os.access(queue, os.W_OK) else f"broker folder {queue} is not writable"
    from config.celery import app

    # One attempt, a second at most: with the cache's 2 s, a probe of a service whose Redis hangs still
    # answers within the 4 s the container healthcheck waits (docker/healthcheck.py).
    timeouts = {"socket_connect_timeout": BROKER_TIMEOUT_SECONDS, "socket_timeout": BROKER_TIMEOUT_SECONDS}
    with app.connection_for_write(transport_options=timeouts) as conn:
        conn.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_SECONDS)
    return None


CHECKS = {"database": check_database, "cache": check_cache, "broker": check_broker}


def run_checks() -> dict[str, str]:
    """{name: "ok" | "error: <reason>"} for every dependency; never raises."""
    results = {}
    for name, check in CHECKS.items():
        try:
            problem = check()
        except Exception as exc:  # a health check reports failures, it must not raise them
            logger.warning("health check %s failed: %s", name, exc)
            problem = type(exc).__name__
        results[name] = "ok" if problem is None else f"error: {problem}"
    return results
