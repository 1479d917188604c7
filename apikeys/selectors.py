"""Reads of API keys."""

import functools
import threading

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.models import Q, QuerySet
from django.utils import timezone

from apikeys import keys
from apikeys.models import APIKey

_compiled = threading.local()


class _CompiledLookup:
    """The authentication query, compiled once per process, thread and database.

    It is the ORM's own SQL for `APIKey.objects.select_related("owner").filter(key_hash=...)`,
    so it follows the models; only the per-request work changes: building and compiling that
    queryset cost about three times as much as running it (profiled under bench/auth.py), on
    the one query every API-key request makes.
    """

    def __init__(self, using: str):
        self.using = using
        compiler = APIKey.objects.select_related("owner").filter(key_hash="").order_by().query.get_compiler(using)
        self.sql, _ = compiler.as_sql()
        self.compiler = compiler
        self.converters = compiler.get_converters([expression for expression, _, _ in compiler.select])
        owner_info = compiler.klass_info["related_klass_infos"][0]
        self.owner_model = owner_info["model"]
        self.set_owner = owner_info["local_setter"]
        self.key_columns = compiler.klass_info["select_fields"]
        self.owner_columns = owner_info["select_fields"]
        self.key_attnames = [compiler.select[i][0].target.attname for i in self.key_columns]
        self.owner_attnames = [compiler.select[i][0].target.attname for i in self.owner_columns]

    def fetch(self, key_hash: str) -> APIKey | None:
        row = _fetch_one_checking_connection(connections[self.using], self.sql, [key_hash])
        if row is None:
            return None
        if self.converters:
            row = next(self.compiler.apply_converters([row], self.converters))
        key = APIKey.from_db(self.using, self.key_attnames, [row[i] for i in self.key_columns])
        owner = self.owner_model.from_db(self.using, self.owner_attnames, [row[i] for i in self.owner_columns])
        self.set_owner(key, owner)
        return key


def _fetch_one(connection, sql: str, params: list):
    with _lookup_cursor(connection) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _fetch_one_checking_connection(connection, sql: str, params: list):
    """Run the lookup, letting it stand in for Django's connection health check.

    With CONN_HEALTH_CHECKS, Django sends `SELECT 1` before a request's first query on a
    persistent connection, and closes the connection if that fails. For most API-key
    requests the lookup is the only query, so the check doubled their round trips to the
    database. Here the lookup itself is the check: it is a read, safe to run again, so if it
    fails on a reused connection that then proves dead, the connection is replaced and the
    lookup runs once more, as it would have after a failed check. Any other error is raised
    as it is. Inside a transaction (a dead connection cannot be replaced there) and with a
    connection pool (which checks its connections itself), Django's own handling applies.
    """
    check_pending = (
        connection.connection is not None
        and connection.health_check_enabled
        and not connection.health_check_done
        and not connection.in_atomic_block
        and not getattr(connection, "pool", None)
    )
    if not check_pending:
        return _fetch_one(connection, sql, params)
    connection.health_check_done = True  # the lookup below checks the connection
    try:
        return _fetch_one(connection, sql, params)
    except DatabaseError:
        if connection.is_usable():
            raise
        connection.close()
    return _fetch_one(connection, sql, params)


def _lookup_cursor(connection):
    """Django's cursor; on PostgreSQL (psycopg 3) one that prepares its statement server-side.

    Planning the joined lookup costs PostgreSQL several times what running it does
    (0.4 ms against under 0.1 ms here), on every API-key request. A prepared statement is
    planned once per connection, and connections persist (CONN_MAX_AGE). Django turns
    prepared statements off by default for connection poolers; this enables them for this
    one statement only. Behind PgBouncer in transaction mode older than 1.21 (or without
    max_prepared_statements), set API_KEYS_PREPARED_LOOKUP=false.
    """
    if connection.vendor != "postgresql" or not settings.API_KEYS_PREPARED_LOOKUP:
        return connection.cursor()
    prepared_cursor_class = _prepared_cursor_class()
    if prepared_cursor_class is None:  # psycopg2
        return connection.cursor()
    # As BaseDatabaseWrapper.cursor() does, with our cursor class instead of the connection's.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw_connection = connection.connection
    if raw_connection.prepare_threshold is None:
        # Django's default (None) turns preparing off for the whole connection; an explicit
        # prepare=True then needs a threshold. Django's own cursors bind client-side and never
        # prepare, whatever the threshold; a huge one keeps any other server-side binding
        # query from being prepared implicitly.
        raw_connection.prepare_threshold = 2**31
    with connection.wrap_database_errors:
        cursor = prepared_cursor_class(raw_connection)
    connection.validate_thread_sharing()
    return connection.make_debug_cursor(cursor) if connection.queries_logged else connection.make_cursor(cursor)


@functools.cache
def _prepared_cursor_class():
    from django.db.backends.postgresql import base

    if not base.is_psycopg3:
        return None

    class PreparedCursor(base.ServerBindingCursor):
        """Server-side binding, and every statement prepared (psycopg keeps them per connection)."""

        def execute(self, query, params=None, *, prepare=None, binary=None):
            return super().execute(query, params, prepare=True, binary=binary)

    return PreparedCursor


def api_key_by_hash(*, key_hash: str, using: str = DEFAULT_DB_ALIAS) -> APIKey | None:
    """The key with this hash, its owner joined (`key.owner` needs no query): one query on the unique index."""
    lookup = getattr(_compiled, using, None)
    if lookup is None:
        lookup = _CompiledLookup(using)
        setattr(_compiled, using, lookup)
    return lookup.fetch(key_hash)


def api_key_list(*, user) -> QuerySet[APIKey]:
    """The user's keys, newest first (active, revoked and expired alike); served by the (owner, -created_at) index."""
    return APIKey.objects.filter(owner=user).order_by("-created_at", "-id")


def api_key_active_count(*, user) -> int:
    return (
        APIKey.objects.filter(owner=user, revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
        .count()
    )


def api_key_find(*, reference: str) -> list[APIKey]:
    """Keys matching a CLI reference: a numeric id, a full key (looked up by its hash) or a display prefix."""
    reference = reference.strip()
    queryset = APIKey.objects.select_related("owner")
    if reference.isdigit():
        return list(queryset.filter(pk=int(reference)))
    if keys.is_well_formed(reference):
        return list(queryset.filter(key_hash=keys.hash_key(reference)))
    if len(reference) <= APIKey._meta.get_field("prefix").max_length:
        return list(queryset.filter(prefix=reference))
    return []
