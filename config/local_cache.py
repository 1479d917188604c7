"""A per-process cache that every process empties at once when what it holds changes.

Authentication reads the same few rows (a login session with its user, an API key with its owner)
on every request. Kept in the process's own memory they cost no network round trip; kept coherent
by a Redis pub/sub channel they are never stale:

- every entry carries tags (``user:42``); a change publishes the tags it outdates, and every
  process drops the entries carrying them;
- a process reads the channel *before each lookup*, without waiting (a poll of a socket that is
  already open). Redis sends a message to its subscribers while it handles the PUBLISH, so by the
  time the changing request has answered its client, the message is on every subscriber's socket:
  the very next request anywhere sees the change. Nothing runs in the background;
- an entry read from the database is stored only if no invalidation arrived while it was read
  (a generation counter), so a read that raced a change cannot bring the old row back;
- with the channel down (Redis unreachable, the connection lost) the cache is emptied and not
  used: every lookup reads the database until the subscription is back (tried at most once a
  second). Messages missed while down cannot matter, since nothing was kept.

Values are copied on the way in and out, so a caller may change what it got (a view may set a
field and fail before saving) without changing what the next request gets.

The one residual gap, documented in docs/benchmark.md: a process whose connection to Redis is
silently cut (no reset, no error) keeps its entries until the operating system notices.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.db import transaction
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

RECONNECT_INTERVAL_SECONDS = 1.0
# Waiting for Redis to confirm the subscription (only when (re)connecting, never on a lookup).
CONNECT_TIMEOUT_SECONDS = 1.0


@dataclass(slots=True)
class _Entry:
    value: Any
    tags: tuple[str, ...]
    copy: Callable[[Any], Any]


class CoherentCache:
    """Entries by key, each with tags; `invalidate(tags)` drops them in every process (see the module doc).

    Thread-safe (gthread workers share one per process) and fork-safe (a forked child starts empty
    and subscribes on its own).
    """

    def __init__(self, *, redis_url: str, max_entries: int, channel: str):
        self.redis_url = redis_url
        self.max_entries = max_entries
        self.channel = channel
        self._lock = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._keys_by_tag: dict[str, set[Hashable]] = {}
        self._generation = 0
        self._pubsub: redis.client.PubSub | None = None
        self._redis: redis.Redis | None = None
        self._retry_at = 0.0
        self._channel_down = False  # logged once per outage, not at every retry

    @property
    def enabled(self) -> bool:
        return bool(self.redis_url and self.max_entries)

    # READING
    # --------------------------------------------------------------------------

    def get(self, key: Hashable) -> tuple[Any, int | None]:
        """(a private copy of the value or None, a stamp for `put`). The stamp is None when the cache
        cannot be used now (disabled, or the channel is down): then `put` keeps nothing."""
        with self._lock:
            if not self._synchronize():
                return None, None
            entry = self._entries.get(key)
            if entry is None:
                return None, self._generation
            self._entries.move_to_end(key)
            return entry.copy(entry.value), self._generation

    def put(self, key: Hashable, value: Any, *, tags: Iterable[str], stamp: int | None, copy: Callable) -> None:
        """Keep a copy of `value`, read from the database after `get` gave `stamp`, unless an invalidation
        arrived since (the read may then predate the change)."""
        if stamp is None:
            return
        with self._lock:
            if not self._synchronize() or stamp != self._generation:
                return
            self._forget_key(key)
            tags = tuple(tags)
            self._entries[key] = _Entry(copy(value), tags, copy)
            for tag in tags:
                self._keys_by_tag.setdefault(tag, set()).add(key)
            while len(self._entries) > self.max_entries:
                self._forget_key(next(iter(self._entries)))

    # INVALIDATING
    # --------------------------------------------------------------------------

    def invalidate(self, tags: Iterable[str]) -> None:
        """Drop the entries carrying any of `tags` in every process: at once, and again once the current
        transaction commits (a process that re-read the row in between read the old one)."""
        if not self.enabled:
            return
        message = " ".join(tags)
        if not message:
            return
        self._publish(message)
        transaction.on_commit(lambda: self._publish(message))

    def clear(self) -> None:
        """Forget every entry of this process (tests; the channel's loss does it by itself)."""
        with self._lock:
            self._forget_all()

    def _publish(self, message: str) -> None:
        with self._lock:
            self._drop_tags(message.split())  # this process at once, whatever happens to the message
            self._generation += 1
        try:
            self._client().publish(self.channel, message)
        except (redis.RedisError, OSError):
            # Every other process reads the database while it cannot reach Redis either; one that
            # still can would keep its copy, so say so loudly.
            logger.exception("could not publish a cache invalidation (%s)", message)

    # THE CHANNEL
    # --------------------------------------------------------------------------

    def _synchronize(self) -> bool:
        """Apply every invalidation already on the socket; False if the cache must not be used now."""
        if not self.enabled:
            return False
        if self._pid != os.getpid():
            self._reset()
        if self._pubsub is None and not self._subscribe():
            return False
        try:
            while self._has_pending_message() and (message := self._pubsub.get_message(timeout=0)) is not None:
                self._apply(message)
        except (redis.RedisError, OSError, ValueError):
            self._log_channel_down("lost")
            self._unsubscribe()
            return False
        return self._pubsub is not None

    def _has_pending_message(self) -> bool:
        """Whether the subscription has bytes to read. Almost every lookup finds none: asking the connection
        costs half of what an empty `get_message` does (its command and retry layers), measured."""
        if self._pubsub is None:
            return False
        if self._pubsub.connection is None:
            raise redis.ConnectionError("the subscription has no connection")
        return self._pubsub.connection.can_read(timeout=0)

    def _apply(self, message: dict) -> None:
        if message["type"] == "message":
            self._drop_tags(message["data"].decode().split())
            self._generation += 1
        elif message["type"] == "subscribe":
            # We subscribe once per connection and wait for that confirmation: another one means the
            # client reconnected by itself, and messages sent in between were lost.
            self._unsubscribe()

    def _subscribe(self) -> bool:
        if time.monotonic() < self._retry_at:
            return False
        pubsub = None
        try:
            pubsub = self._client().pubsub()
            pubsub.subscribe(self.channel)
            confirmation = pubsub.get_message(timeout=CONNECT_TIMEOUT_SECONDS)
            if confirmation is None or confirmation["type"] != "subscribe":
                raise redis.ConnectionError("no subscription confirmation")
        except (redis.RedisError, OSError):
            self._log_channel_down("unavailable")
            self._retry_at = time.monotonic() + RECONNECT_INTERVAL_SECONDS
            if pubsub is not None:
                pubsub.close()
            return False
        self._forget_all()  # anything kept before may have missed messages
        self._generation += 1
        self._pubsub = pubsub
        if self._channel_down:
            self._channel_down = False
            logger.info("cache invalidation channel back; caching again")
        return True

    def _log_channel_down(self, what: str) -> None:
        """One warning, with the cause, when the channel goes down; the retries of the outage say nothing."""
        if not self._channel_down:
            self._channel_down = True
            logger.warning("cache invalidation channel %s; reading the database until it is back", what, exc_info=True)

    def _unsubscribe(self) -> None:
        self._forget_all()
        self._generation += 1
        if self._pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                self._pubsub.close()
        self._pubsub = None

    def _client(self) -> redis.Redis:
        """The process's client, for publishing and for the subscription's connection. It lives as long as the
        cache: a dropped client closes its pool, and with it the subscription."""
        if self._redis is None:
            # No retries: a reconnection inside redis-py would hide that messages were lost.
            self._redis = redis.Redis.from_url(
                self.redis_url,
                socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                socket_timeout=CONNECT_TIMEOUT_SECONDS,
                retry=Retry(NoBackoff(), 0),
            )
        return self._redis

    # ENTRIES
    # --------------------------------------------------------------------------

    def _drop_tags(self, tags: Iterable[str]) -> None:
        for tag in tags:
            for key in self._keys_by_tag.pop(tag, ()):
                self._forget_key(key)

    def _forget_key(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for tag in entry.tags:
            keys = self._keys_by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._keys_by_tag[tag]

    def _forget_all(self) -> None:
        self._entries.clear()
        self._keys_by_tag.clear()


def copy_user_of(entry: tuple[Any, Any]) -> tuple[Any, Any]:
    """The `copy` of an entry (frozen state, user model): the state as it is, shared by every request of the
    process, and a copy of the user, which a request may change without changing the cached one."""
    state, user = entry
    # What copy.copy() makes of a model instance (Model.__getstate__ copies its _state and caches), without the
    # pickling detour through __reduce__ and the app registry: 9 -> 5 us a request.
    clone = type(user).__new__(type(user))
    clone.__dict__.update(user.__getstate__())
    return state, clone


def user_tag(user_id) -> str:
    """The tag of everything cached on behalf of one user (their sessions, their API keys)."""
    return f"user:{user_id}"


def _channel_for(redis_url: str) -> str:
    # Pub/sub channels are shared by every database number of a Redis server: name the database.
    database = urlsplit(redis_url).path.strip("/") or "0"
    return f"gatehouse:{database}:invalidate"


_instance: CoherentCache | None = None


def auth_cache() -> CoherentCache:
    """The process's cache of authenticated principals (login sessions, API keys), as the settings say
    (REDIS_URL, AUTH_CACHE_ENTRIES); rebuilt, empty, if they change (tests override them)."""
    global _instance  # noqa: PLW0603 (one per process)
    url, entries = settings.REDIS_URL, settings.AUTH_CACHE_ENTRIES
    if _instance is None or (_instance.redis_url, _instance.max_entries) != (url, entries):
        _instance = CoherentCache(redis_url=url, max_entries=entries, channel=_channel_for(url))
    return _instance
