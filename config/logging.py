"""Logging for every process (web, worker, beat): a request or task id on each line, JSON in production,
and no credential ever written out.

- ``request_id_var`` holds the id of the HTTP request being served (config.middleware sets it) or,
  in a Celery worker, the id of the request that enqueued the running job.
- ``RequestContextFilter`` copies that id, and the running Celery task's id and name, onto every record.
- ``RedactSecretsFilter`` rewrites a record's message (and its arguments) so that bearer tokens, JWTs,
  API keys and password/token fields are replaced by ``[REDACTED]`` before any handler formats it.
- ``JSONFormatter`` writes one JSON object per line; ``logging_config()`` builds the LOGGING dict the
  settings use; ``GunicornJSONLogger`` gives gunicorn's own error and access logs the same shape.

Stdlib and orjson only at import time (gunicorn's master imports this before Django is set up).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import os
import re
import sys
import time
import traceback

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

REDACTED = "[REDACTED]"

# Header or field names whose value is a credential, wherever they appear as `name: value`,
# `name=value` or `"name": "value"` in a message (`access_token`, `X-API-Key`, `new_password`, ...).
# Broad on purpose: redacting a harmless value costs nothing, writing out a credential does.
_SENSITIVE_NAMES = r"[\w-]*(?:token|secret|passw(?:or)?d|api[_-]?key|authorization|cookie|sessionid)[\w-]*"
_SCHEME = r"(?:bearer|basic)"
_PATTERNS = (
    # `Bearer abc`, `basic dXNlcjpwYXNz` anywhere: keep the scheme, drop the credential.
    (re.compile(rf"\b({_SCHEME})(\s+)[A-Za-z0-9._~+/=-]{{8,}}", re.IGNORECASE), rf"\1\2{REDACTED}"),
    # A JWT anywhere (header.payload.signature, each base64url; the header always starts with eyJ).
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    # A Gatehouse API key anywhere (sk_ + 49 characters); the 11-character display prefix stays
    # readable, it is what identifies a key in logs.
    (re.compile(r"\bsk_[A-Za-z0-9_-]{40,}"), f"sk_{REDACTED}"),
    # name=value / name: value / "name": "value" / 'name': 'value' for the sensitive names.
    (
        re.compile(
            rf"""(?P<key>["']?\b{_SENSITIVE_NAMES}["']?\s*[:=]\s*)(?P<quote>["'])?"""
            rf"""(?P<value>(?(quote)[^"']*|(?:{_SCHEME}\s+)?(?:\[REDACTED\]|[^\s,;&}}\])\[])+))""",
            re.IGNORECASE,
        ),
        lambda match: f"{match['key']}{match['quote'] or ''}{REDACTED}",
    ),
)
_SENSITIVE_KEY = re.compile(_SENSITIVE_NAMES, re.IGNORECASE)
# Each pattern above matches only where one of these is (in any case): a scheme, a JWT's start, a key's prefix,
# or the `:`/`=` after a name. Most text (a path, a user agent, a plain message) holds none, and looking for them
# costs a third of the four substitutions (counted; the access log redacts two strings per request).
_SECRET_MARKERS = ("bearer", "basic", "eyj", "sk_", ":", "=")


def redact(text: str) -> str:
    """``text`` with every credential-looking value replaced by [REDACTED]."""
    lowered = text.lower()
    for marker in _SECRET_MARKERS:
        if marker in lowered:
            return _substitute_secrets(text)
    return text


def _substitute_secrets(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value):
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes):
        return redact(value.decode("utf-8", "replace"))
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and _SENSITIVE_KEY.fullmatch(k) else _redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v) for v in value)
    return value


class RedactSecretsFilter(logging.Filter):
    """Rewrites a record so that no token, API key or password reaches a handler.

    The message is formatted here (``getMessage()``), redacted, and stored back with no
    arguments left, so every argument type (str, dict, a request object's repr) is covered.
    Exception text is redacted by the formatter, which is where it is rendered.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_redacted", False):
            return True
        if isinstance(record.args, dict):
            # "%(password)s" style: the name is gone once formatted, so redact by key first.
            record.args = _redact_value(record.args)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let logging report it as usual
            return True
        record.msg, record.args = redact(message), None
        for name, value in list(vars(record).items()):
            if name in _EXTRA_SKIP:
                continue
            if _SENSITIVE_KEY.fullmatch(name):
                setattr(record, name, REDACTED)
            elif isinstance(value, str | dict | list | tuple | bytes):
                setattr(record, name, _redact_value(value))
        record._redacted = True
        return True


def _current_task():
    # A process that never imported Celery runs no task: looking would import Celery, kombu and greenlet
    # into every web worker on its first log line (3.4 MB each, measured), and cost a few us per line.
    if "celery" not in sys.modules:
        return None
    from celery import current_task

    return current_task if current_task else None


class RequestContextFilter(logging.Filter):
    """Adds ``request_id`` (HTTP request, or the request that enqueued a job) and, inside a
    Celery job, ``task_id`` and ``task_name`` to every record; values a caller passed win."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        task = _current_task()
        if task is not None and getattr(task.request, "id", None):
            if getattr(record, "task_id", None) is None:
                record.task_id = task.request.id
            if getattr(record, "task_name", None) is None:
                record.task_name = task.name
        return True


# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_EXTRA_SKIP = _RECORD_ATTRIBUTES | {"_redacted", "request_id", "task_id", "task_name"}
_JSON_SCALARS = (str, int, float, bool, type(None))
# One encoder for every line: json.dumps() with any option builds a new encoder per call (half the cost of a line).
_encode_json = json.JSONEncoder(ensure_ascii=False, default=str).encode


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, [task_id, task_name],
    process, the `extra=` fields that are plain values, and ``exc`` with the redacted traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": getattr(record, "request_id", None),
        }
        if getattr(record, "task_id", None):
            entry["task_id"] = record.task_id
            entry["task_name"] = getattr(record, "task_name", None)
        entry["process"] = record.process
        for name, value in vars(record).items():
            if name in _EXTRA_SKIP or name in entry or name.startswith("_"):
                continue
            # Only plain values: an object such as Django's request would be written through its
            # repr, which carries the query string; a dict is kept when it is plain JSON.
            if isinstance(value, _JSON_SCALARS):
                entry[name] = REDACTED if _SENSITIVE_KEY.fullmatch(name) else value
            elif isinstance(value, dict | list):
                try:
                    json.dumps(value)
                except (TypeError, ValueError):
                    continue
                entry[name] = _redact_value(value)
        if record.exc_info:
            entry["exc"] = redact("".join(traceback.format_exception(*record.exc_info)))
        elif record.exc_text:
            entry["exc"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(record.stack_info)
        return _encode_json(entry)


ACCESS_LOGGER = "gunicorn.access"


def access_line(fields: dict, *, created: float, process: int, level: str = "INFO") -> str:
    """gunicorn's access line for one request: the time, level, logger, message and process every line has, then
    the fields ``GunicornJSONLogger.access`` built (each redacted already)."""
    entry = {
        "time": dt.datetime.fromtimestamp(created, tz=dt.UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "logger": ACCESS_LOGGER,
        "message": f"{fields['method']} {fields['path']} {fields['status']}",
        "process": process,
        **fields,
    }
    # orjson: a tenth of json's cost, and this is one line per request (the fields are plain values).
    return orjson.dumps(entry, default=str).decode()


class AccessLineFormatter(JSONFormatter):
    """Access lines that go through logging (where a deployer's logconfig gives gunicorn.access handlers of its
    own): written by ``access_line``, without JSONFormatter's pass over every attribute of the record and its
    second redaction of the message. Any other record is formatted as usual."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "access_fields", None)
        if fields is None:
            return super().format(record)
        return access_line(fields, created=record.created, process=record.process, level=record.levelname)


class PlainFormatter(logging.Formatter):
    """Development format: time level logger [request id] message, with the traceback redacted too."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = None
        if getattr(record, "task_id", None) and not record.request_id:
            record.request_id = f"task:{record.task_id}"
        return redact(super().format(record))


def logging_config(*, json_lines: bool, level: str = "INFO") -> dict:
    """The LOGGING setting: every record through the root handler, ids added, secrets redacted."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_context": {"()": "config.logging.RequestContextFilter"},
            "redact_secrets": {"()": "config.logging.RedactSecretsFilter"},
        },
        "formatters": {
            "json": {"()": "config.logging.JSONFormatter"},
            "plain": {"()": "config.logging.PlainFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json" if json_lines else "plain",
                # Handler filters see every record, also those propagated from child loggers.
                "filters": ["redact_secrets", "request_context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Django's default LOGGING gives the "django" logger a console handler of its own (with
            # DEBUG on): drop it, so each line is written once, through the root handler above.
            "django": {"handlers": [], "level": level, "propagate": True},
            # runserver's request lines: ours have the request id already.
            "django.server": {"handlers": ["console"], "level": level, "propagate": False},
            # The model SDKs' HTTP client logs a line per call at INFO (the provider's URL); the agent's
            # own lines say what matters, and a failure is still logged at WARNING.
            "httpx2": {"level": "WARNING"},
            "httpcore2": {"level": "WARNING"},
        },
    }


# CELERY ------------------------------------------------------------------------------------------
# The id of the HTTP request that enqueued a job travels in the message headers, so the worker's
# lines for that job carry it too (besides the job's own task_id).
REQUEST_ID_HEADER = "gatehouse_request_id"


def _add_request_id_header(headers=None, **kwargs):
    request_id = request_id_var.get()
    if request_id and isinstance(headers, dict):
        headers.setdefault(REQUEST_ID_HEADER, request_id)


def _bind_request_id(task=None, **kwargs):
    request_id = getattr(task.request, REQUEST_ID_HEADER, None) if task is not None else None
    if request_id is None and task is not None:
        request_id = (getattr(task.request, "headers", None) or {}).get(REQUEST_ID_HEADER)
    request_id_var.set(request_id)


def _unbind_request_id(**kwargs):
    request_id_var.set(None)


def _configure_from_django(**kwargs):
    """Celery's setup_logging hook: use Django's LOGGING instead of Celery's own handlers."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


def install_celery_logging() -> None:
    """Called by config.celery: the worker and beat log through Django's LOGGING (JSON in
    production), and a job's lines carry its task id and the id of the request that queued it."""
    from celery import signals

    signals.setup_logging.connect(_configure_from_django, weak=False, dispatch_uid="gatehouse.logging")
    signals.before_task_publish.connect(_add_request_id_header, weak=False, dispatch_uid="gatehouse.request_id")
    signals.task_prerun.connect(_bind_request_id, weak=False, dispatch_uid="gatehouse.request_id")
    signals.task_postrun.connect(_unbind_request_id, weak=False, dispatch_uid="gatehouse.request_id")


# GUNICORN ----------------------------------------------------------------------------------------
try:
    from gunicorn.glogging import Logger as _GunicornLogger
except ImportError:  # gunicorn is a production requirement only
    _GunicornLogger = None

if _GunicornLogger is not None:

    class GunicornJSONLogger(_GunicornLogger):
        """gunicorn's error and access logs as JSON lines (config/gunicorn.py: logger_class).

        The access line has the method, the path without its query string, the status, size,
        duration, client address, user agent and request id; never the query string, the
        referrer or a request header, any of which may carry a credential.
        """

        def setup(self, cfg):
            super().setup(cfg)
            for log, formatter in ((self.error_log, JSONFormatter()), (self.access_log, AccessLineFormatter())):
                for handler in log.handlers:
                    if getattr(handler, "_gunicorn", False):
                        handler.setFormatter(formatter)
                        handler.filters = [RedactSecretsFilter(), RequestContextFilter()]
            # With `accesslog` ("-" or a file) the handlers are gunicorn's own, and a line built here is written
            # straight to their streams: through logging (a record, two filters, the formatter) the line cost
            # twice as much, a tenth of a public request (docs/benchmark.md). Handlers from a logconfig get records.
            handlers = self.access_log.handlers
            direct = bool(handlers) and all(getattr(handler, "_gunicorn", False) for handler in handlers)
            self.access_streams = list(handlers) if direct else None

        def access(self, resp, req, environ, request_time):
            if not self.access_log_enabled:
                return
            status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
            fields = {
                "method": environ.get("REQUEST_METHOD"),
                # The two values a client chooses freely; the others are gunicorn's or ours.
                "path": redact(environ.get("PATH_INFO") or ""),
                "status": int(status) if str(status).isdigit() else status,
                "bytes": getattr(resp, "sent", None),
                "duration_ms": round(request_time.total_seconds() * 1000, 1),
                "remote_addr": environ.get("REMOTE_ADDR"),
                "user_agent": redact(environ.get("HTTP_USER_AGENT") or ""),
                "request_id": next((v for name, v in resp.headers or () if name.lower() == "x-request-id"), None),
            }
            try:
                if self.access_streams is not None:
                    self._write_access_line(fields)
                else:
                    self._log_access_line(fields)
            except Exception:
                self.error(traceback.format_exc())

        def _write_access_line(self, fields):
            line = access_line(fields, created=time.time(), process=os.getpid()) + "\n"
            for handler in self.access_streams:
                handler.acquire()  # as emit() does: gunicorn's reopen_files (SIGUSR1, log rotation) swaps the stream
                try:
                    handler.stream.write(line)
                    handler.stream.flush()
                finally:
                    handler.release()

        def _log_access_line(self, fields):
            log = self.access_log
            if log.isEnabledFor(logging.INFO):
                # Redacted above, field by field, so the filter and the formatter pass the line through as it is.
                extra = {"access_fields": fields, "_redacted": True}
                args = (fields["method"], fields["path"], fields["status"])
                log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, "%s %s %s", args, None, extra=extra))
