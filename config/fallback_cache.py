"""The cache of the request path's counters and marks (throttles, failed logins), which must work while Redis is down.

Django's Redis cache raises when Redis cannot be reached, so a rate limit read from it would take login,
registration and every throttled endpoint down with Redis (a 500). Letting every request through instead
(failing open) would hand a password guesser the outage. So `request_cache` fails *over*: while Redis does not
answer, the counters live in this process's memory. Each web process then limits on its own, so a client gets
at most (number of web processes) times the configured rate, for as long as the outage lasts; when Redis is back
the counters are read from it again (and what was counted in memory is forgotten).

A call that fails marks Redis down for `RETRY_SECONDS`: Redis is not asked again until then, so a Redis that
hangs (its 2-second socket timeout) costs one request 2 seconds, not every request every one of its cache calls.
GET /health asks Redis itself (config/health.py), never this cache, so it reports the outage.
"""

import logging
import time

import redis
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache

logger = logging.getLogger(__name__)

RETRY_SECONDS = 5.0
# LocMemCache culls beyond its MAX_ENTRIES (300 by default): enough room for one outage's counters (a throttle's
# history is a list of at most its rate's count of timestamps, about 1 KB for 30/min).
MEMORY_ENTRIES = 10_000


class FallbackCache:
    """get/set/add of a Django cache alias, in this process's memory while that cache raises (module docstring)."""

    def __init__(self, *, alias: str = DEFAULT_CACHE_ALIAS, retry_seconds: float = RETRY_SECONDS):
        self.alias = alias
        self.retry_seconds = retry_seconds
        self.memory = LocMemCache(f"fallback:{alias}", {"OPTIONS": {"MAX_ENTRIES": MEMORY_ENTRIES}})
        self._down_until = 0.0

    def get(self, key, default=None):
        return self._call("get", key, default)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT) -> None:
        self._call("set", key, value, timeout)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT) -> bool:
        return self._call("add", key, value, timeout)

    def clear(self) -> None:
        """Forget what was counted in memory and that Redis was down (tests)."""
        self.memory.clear()
        self._down_until = 0.0

    @property
    def is_down(self) -> bool:
        return time.monotonic() < self._down_until

    def _call(self, method: str, *args):
        if not self.is_down:
            try:
                # Looked up on each call, not kept: caches are per thread, and tests override CACHES.
                return getattr(caches[self.alias], method)(*args)
            except redis.RedisError as error:
                self._down_until = time.monotonic() + self.retry_seconds
                logger.warning(
                    "cache %r unreachable (%s): counting in this process's memory for %.0f s",
                    self.alias,
                    error,
                    self.retry_seconds,
                )
        return getattr(self.memory, method)(*args)


request_cache = FallbackCache()
