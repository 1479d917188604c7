"""Structured logging: request ids on every line, Celery task ids, JSON in production, no credentials."""

import io
import json
import logging
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from celery import signals

from config.celery import app as celery_app
from config.logging import (
    REDACTED,
    REQUEST_ID_HEADER,
    JSONFormatter,
    PlainFormatter,
    RedactSecretsFilter,
    RequestContextFilter,
    redact,
    request_id_var,
)

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyX2lkIjoiMSIsInNpZCI6ImFiYyJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
API_KEY = "sk_" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3"


@pytest.fixture
def capture():
    """A logger whose handler is built like the production one: both filters, JSON formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter())
    handler.addFilter(RedactSecretsFilter())
    handler.addFilter(RequestContextFilter())
    logger = logging.getLogger("gatehouse.test.capture")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False

    def lines():
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield logger, lines, stream
    logger.removeHandler(handler)


# REDACTION -------------------------------------------------------------------------------------------
def test_bearer_tokens_and_api_keys_are_redacted_in_message_and_args(capture):
    logger, lines, stream = capture
    logger.warning(f"Authorization: Bearer {JWT} and key {API_KEY}")
    logger.warning("auth header %s, key %s", f"Bearer {JWT}", API_KEY)
    logger.warning("headers %s", {"Authorization": f"Bearer {JWT}", "X-API-Key": API_KEY, "Accept": "json"})
    logger.warning("login %(username)s %(password)s", {"username": "alice", "password": "hunter2-secret"})
    logger.info("refresh body %s", '{"refresh_token": "abc.def.ghi", "name": "x"}')
    logger.info("GET /callback?access_token=tok123456789&state=ok")
    output = stream.getvalue()
    for secret in (JWT, API_KEY, API_KEY[3:], "hunter2-secret", "abc.def.ghi", "tok123456789"):
        assert secret not in output
    messages = [entry["message"] for entry in lines()]
    assert messages[0] == f"Authorization: {REDACTED} and key sk_{REDACTED}"
    assert messages[1] == f"auth header Bearer {REDACTED}, key sk_{REDACTED}"
    assert "'Accept': 'json'" in messages[2] and "alice" in messages[3]
    assert messages[5] == f"GET /callback?access_token={REDACTED}&state=ok"


def test_secrets_in_extra_fields_and_tracebacks_are_redacted(capture):
    logger, lines, stream = capture
    try:
        raise ValueError(f"token rejected: {JWT}")
    except ValueError:
        logger.exception("request failed", extra={"api_key": API_KEY, "password": "pw-123456", "user_id": 7})
    output = stream.getvalue()
    assert JWT not in output and API_KEY not in output and "pw-123456" not in output
    (entry,) = lines()  # the traceback is inside the one JSON line
    assert entry["api_key"] == REDACTED and entry["password"] == REDACTED and entry["user_id"] == 7
    assert "Traceback (most recent call last)" in entry["exc"] and f"token rejected: {REDACTED}" in entry["exc"]


def test_redaction_leaves_ordinary_text_alone():
    text = "user alice created post 12 (status=201, path=/api/v1/posts, took 3.2 ms)"
    assert redact(text) == text


def test_objects_passed_as_extra_are_not_written_through_their_repr(capture):
    """django.request passes the request object; its repr carries the query string."""
    logger, lines, _ = capture

    class Request:
        def __repr__(self):
            return "<WSGIRequest: GET '/x?api_key=sk_leak'>"

    logger.warning("Not Found: /x", extra={"request": Request(), "status_code": 404})
    (entry,) = lines()
    assert "request" not in entry and entry["status_code"] == 404


# JSON AND PLAIN FORMATS ---------------------------------------------------------------------------------
def test_json_lines_have_time_level_logger_message_and_request_id(capture):
    logger, lines, _ = capture
    token = request_id_var.set("req-abcdef12")
    try:
        logger.info("hello %s", "world")
    finally:
        request_id_var.reset(token)
    logger.info("outside a request")
    first, second = lines()
    assert first["message"] == "hello world" and first["level"] == "INFO"
    assert first["logger"] == "gatehouse.test.capture" and first["request_id"] == "req-abcdef12"
    assert first["time"].endswith("+00:00") and isinstance(first["process"], int)
    assert second["request_id"] is None


def test_plain_format_shows_the_request_id_and_redacts():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key %s", (API_KEY,), None)
    RequestContextFilter().filter(record)
    record.request_id = "req-12345678"
    line = PlainFormatter().format(record)
    assert line.endswith(f"INFO x [req-12345678] key sk_{REDACTED}")


def run_python(code: str, tmp_path, **env):
    environment = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}}
    environment.update(VAR_DIR=str(tmp_path / "var"), **env)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


LOG_SOMETHING = (
    f"import django, logging; django.setup(); logging.getLogger('gatehouse.probe').warning('probe with Bearer {JWT}')"
)


def test_production_settings_log_json_lines(tmp_path):
    result = run_python(
        LOG_SOMETHING,
        tmp_path,
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY="s" * 50,
        ALLOWED_HOSTS="api.example.com",
    )
    assert result.returncode == 0, result.stderr
    (entry,) = [json.loads(line) for line in result.stderr.splitlines()]
    assert entry["logger"] == "gatehouse.probe" and entry["level"] == "WARNING"
    assert entry["message"] == f"probe with Bearer {REDACTED}" and entry["request_id"] is None


def test_a_web_process_logs_without_importing_celery(tmp_path):
    """A line's task context is looked up only in a process that imported Celery (a worker, or a web process
    that queued a job): otherwise the first access line would pull Celery, kombu and greenlet into every web
    worker."""
    result = run_python(
        LOG_SOMETHING + "; import sys; print('celery' in sys.modules)",
        tmp_path,
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY="s" * 50,
        ALLOWED_HOSTS="api.example.com",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    assert json.loads(result.stderr.splitlines()[-1])["logger"] == "gatehouse.probe"


def test_development_settings_log_plain_lines(tmp_path):
    result = run_python(LOG_SOMETHING, tmp_path, DJANGO_SETTINGS_MODULE="config.settings.base")
    assert result.returncode == 0, result.stderr
    (line,) = result.stderr.splitlines()
    assert not line.startswith("{")
    assert line.endswith(f"WARNING gatehouse.probe [None] probe with Bearer {REDACTED}")


# REQUEST ID MIDDLEWARE ------------------------------------------------------------------------------------
@pytest.fixture
def django_request_records():
    """Records of Django's request logger, after our filters ran (as the console handler sees them)."""
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep()
    handler.addFilter(RedactSecretsFilter())
    handler.addFilter(RequestContextFilter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_a_sane_request_id_is_kept_and_echoed(api_client, django_request_records):
    response = api_client.get("/api/v1/auth/me", HTTP_X_REQUEST_ID="client-trace-0001")
    assert response.status_code == 401
    assert response["X-Request-ID"] == "client-trace-0001"
    # Django logs the 401 after the middleware chain returned: the id is still on that line.
    (record,) = [r for r in django_request_records if r.getMessage().startswith("Unauthorized")]
    assert record.request_id == "client-trace-0001"
    assert request_id_var.get() is None, "the id is cleared once the response is closed"


@pytest.mark.parametrize(
    "incoming", [None, "", "short", "has space in it", "x" * 200, "id\nInjected: line", "-starts-with-dash"]
)
def test_a_missing_or_unsafe_request_id_is_replaced_by_a_fresh_random_id(api_client, incoming):
    headers = {} if incoming is None else {"HTTP_X_REQUEST_ID": incoming}
    first = api_client.get("/health/live", **headers)["X-Request-ID"]
    second = api_client.get("/health/live", **headers)["X-Request-ID"]
    assert first != incoming and len(first) == 32 and int(first, 16) >= 0
    assert first != second


def test_lines_logged_while_serving_carry_the_request_id(auth_client, django_request_records):
    auth_client.get("/api/v1/auth/sessions/999999", HTTP_X_REQUEST_ID="trace-for-404-abc")
    response = auth_client.delete("/api/v1/auth/sessions/999999", HTTP_X_REQUEST_ID="trace-for-404-abc")
    assert response.status_code == 404
    ids = {r.request_id for r in django_request_records if "999999" in r.getMessage()}
    assert ids == {"trace-for-404-abc"}


def test_credentials_sent_to_the_api_never_reach_the_log(api_client, django_request_records, user, password):
    """A rejected login and a rejected token are logged (401) without the password or the token."""
    api_client.post("/api/v1/auth/login", {"username": user.username, "password": "wrong-" + password}, format="json")
    api_client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {JWT}")
    api_client.get("/api/v1/auth/me", HTTP_X_API_KEY=API_KEY)
    assert len(django_request_records) == 3
    for record in django_request_records:
        text = record.getMessage() + repr(vars(record))
        assert password not in text and JWT not in text and API_KEY not in text


# CELERY ------------------------------------------------------------------------------------------------------
@celery_app.task(name="config.tests.log_probe", bind=True)
def log_probe(self):
    logging.getLogger("gatehouse.test.capture").info("inside the job")
    return self.request.id


def test_a_job_logs_with_its_task_id_and_the_request_that_queued_it(capture):
    logger, lines, _ = capture
    token = request_id_var.set("req-queued-0001")
    try:
        headers = {}
        # What the publisher does for a real message (config.logging adds the header).
        signals.before_task_publish.send(sender="config.tests.log_probe", body=None, headers=headers)
        assert headers == {REQUEST_ID_HEADER: "req-queued-0001"}
    finally:
        request_id_var.reset(token)
    result = log_probe.apply(headers=headers)  # runs here, through Celery's tracer and its signals
    task_id = result.get()
    (entry,) = [e for e in lines() if e["message"] == "inside the job"]
    assert entry["task_id"] == task_id and entry["task_name"] == "config.tests.log_probe"
    assert entry["request_id"] == "req-queued-0001"
    assert request_id_var.get() is None, "the id does not leak into the next job"


def test_celery_uses_django_logging_instead_of_its_own():
    """A setup_logging receiver stops Celery from replacing the root handlers with its plain format."""
    assert signals.setup_logging.receivers, "config.celery must install config.logging's hook"


# GUNICORN ACCESS LOG -------------------------------------------------------------------------------------------
def _access_logger():
    """gunicorn's logger as config/gunicorn.py configures it, its access lines written to a string."""
    from gunicorn.config import Config

    from config.logging import GunicornJSONLogger

    cfg = Config()
    cfg.set("accesslog", "-")
    logger = GunicornJSONLogger(cfg)
    stream = io.StringIO()
    for handler in logger.access_log.handlers:
        handler.setStream(stream)
    return logger, stream


def test_gunicorn_access_line_is_json_without_query_string_or_headers():
    glogging = pytest.importorskip("gunicorn.glogging")
    logger, stream = _access_logger()

    class Response:
        status = "200 OK"
        headers = [("Content-Type", "application/json"), ("X-Request-ID", "req-from-django-1")]
        sent = 42

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/api/v1/auth/me",
        "QUERY_STRING": "api_key=sk_in_query_123456",
        "RAW_URI": "/api/v1/auth/me?api_key=sk_in_query_123456",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.7",
        "HTTP_USER_AGENT": "curl/8",
        "HTTP_AUTHORIZATION": f"Bearer {JWT}",
        "HTTP_REFERER": "https://app.example.com/?token=abcdefghijkl",
    }
    logger.access(Response(), None, environ, timedelta(milliseconds=12.5))
    (entry,) = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert isinstance(logger, glogging.Logger)
    assert entry["logger"] == "gunicorn.access" and entry["message"] == "GET /api/v1/auth/me 200"
    assert (entry["method"], entry["path"], entry["status"], entry["bytes"]) == ("GET", "/api/v1/auth/me", 200, 42)
    assert entry["duration_ms"] == 12.5 and entry["remote_addr"] == "10.0.0.7"
    assert entry["request_id"] == "req-from-django-1"
    text = stream.getvalue()
    assert "sk_in_query" not in text and JWT not in text and "abcdefghijkl" not in text and "?" not in text


def test_gunicorn_access_line_redacts_a_credential_in_the_path_or_the_user_agent():
    pytest.importorskip("gunicorn.glogging")
    logger, stream = _access_logger()

    class Response:
        status = "404 Not Found"
        headers = []
        sent = 0

    key = "sk_" + "A1b2C3d4E5" * 5
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": f"/api/v1/{key}", "HTTP_USER_AGENT": f"bot {JWT}"}
    logger.access(Response(), None, environ, timedelta(milliseconds=1))
    text = stream.getvalue()
    assert key not in text and JWT not in text
    entry = json.loads(text)
    assert entry["path"] == f"/api/v1/sk_{REDACTED}" and entry["message"] == f"GET /api/v1/sk_{REDACTED} 404"


def test_an_access_line_through_a_logconfig_handler_is_the_same_line():
    """With handlers of a deployer's own (logconfig), the line goes through logging and its filters as a record."""
    pytest.importorskip("gunicorn.glogging")
    from config.logging import AccessLineFormatter

    direct, direct_stream = _access_logger()
    through_logging, _ = _access_logger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(AccessLineFormatter())
    handler.filters = [RedactSecretsFilter(), RequestContextFilter()]
    through_logging.access_log.handlers = [handler]
    through_logging.access_streams = None

    class Response:
        status = "201 Created"
        headers = [("X-Request-ID", "req-abcdef12")]
        sent = 7

    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": f"/api/v1/{JWT}", "REMOTE_ADDR": "10.0.0.7"}
    for logger in (direct, through_logging):
        logger.access(Response(), None, environ, timedelta(milliseconds=3))
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    (expected,) = [json.loads(text) for text in direct_stream.getvalue().splitlines()]
    assert {**line, "time": None} == {**expected, "time": None}
    assert line["path"] == f"/api/v1/{REDACTED}" and line["status"] == 201 and line["request_id"] == "req-abcdef12"


@pytest.mark.parametrize(
    "text",
    [
        "plain text with no secret in it",
        "/api/v1/posts/12",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0",
        f"BEARER {JWT[:20]}xyz",
        f"Basic dXNlcjpwYXNzd29yZA== and {API_KEY}",
        f"/api/v1/{JWT}",
        "token=abc123456789",
        '{"Password": "hunter2"}',
        "EYJ is not a JWT but eyJabcdef.ghijkl.mn is one",
    ],
)
def test_the_shortcut_for_text_without_markers_redacts_as_the_full_substitution_does(text):
    """redact() skips the four substitutions for text that holds none of the markers they need."""
    from config.logging import _substitute_secrets

    assert redact(text) == _substitute_secrets(text)
