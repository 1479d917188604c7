"""Request id: every request gets one, every log line written while serving it carries it, and the
response hands it back in ``X-Request-ID`` so a client can quote it in a bug report. And the answer of a
request that needed the database while it could not be reached: a 503, not a 500.
"""

import logging
import re
import secrets

from django.contrib.messages.middleware import MessageMiddleware
from django.core.signals import request_finished
from django.db import InterfaceError, OperationalError
from django.http import JsonResponse

from config.logging import request_id_var
from config.requests import current_request

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
API_PATH_PREFIX = "/api/"
# An incoming id is kept only when it cannot break a log line or a header: a proxy's or a
# client's own id (a UUID, a ULID, a trace id) fits; anything else is replaced by a fresh one.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,127}")


def request_id_from(value: str | None) -> str:
    """The caller's id when it is sane, else 128 fresh random bits in hex: what uuid4().hex carried, without
    building a UUID object to throw away."""
    if value and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return secrets.token_hex(16)


class RequestIDMiddleware:
    """Sets the request id for the logs (config.logging.request_id_var) and echoes it in the response;
    also makes the request known to code far from its view (config.requests.current_request).

    Goes first in MIDDLEWARE so that every other middleware's lines (and redirects) carry it. The
    id is cleared when the response is closed, not when this middleware returns: Django logs a 4xx
    or 5xx (logger ``django.request``) after the whole middleware chain has returned.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id
        request_id_var.set(request_id)
        current_request.set(request)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response


def _clear_request_id(**kwargs):
    request_id_var.set(None)
    current_request.set(None)


request_finished.connect(_clear_request_id, dispatch_uid="config.middleware.clear_request_id")


class PageMessageMiddleware(MessageMiddleware):
    """Django's messages (the notes the admin shows on its next page) for pages only.

    An API request never reads or writes one, yet the stock middleware builds its storage (a cookie and a
    session backend) on every request: 5% of a public API request, profiled. Its response half already
    skips a request with no storage.
    """

    def process_request(self, request):
        if not request.path_info.startswith(API_PATH_PREFIX):
            super().process_request(request)


# A PostgreSQL restart takes a few seconds; the next request opens a new connection (CONN_HEALTH_CHECKS).
DATABASE_RETRY_AFTER_SECONDS = 5


class DatabaseUnavailableMiddleware:
    """A view (any: the API's, the admin's) that fails because the database cannot be reached or the connection
    broke answers 503 `{"detail", "code": "database_unavailable"}` with Retry-After, instead of a 500.

    OperationalError is what the driver raises for a refused or lost connection (and for a deadlock or a
    cancelled statement, which a retry also cures); InterfaceError for a connection it had already closed.
    DRF's exception handler leaves both to Django, which hands them here. Django then closes the broken
    connection at the end of the request, so the next one connects again: recovery needs no restart.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.warning("database unavailable: %s %s: %s", request.method, request.path, exception)
        response = JsonResponse(
            {"detail": "The database is unavailable; try again shortly.", "code": "database_unavailable"},
            status=503,
        )
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
        return response
