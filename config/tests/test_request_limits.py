"""What the API parses and how much: JSON and form bodies only, none larger than DATA_UPLOAD_MAX_MEMORY_SIZE;
and the entry points a server starts default to the production settings."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

from conftest import TEST_PASSWORD

ROOT = Path(__file__).resolve().parents[2]
LOGIN = "/api/v1/auth/login"
TOKEN = "/api/v1/auth/token"


@pytest.mark.django_db
@pytest.mark.parametrize("path", [LOGIN, TOKEN])
def test_multipart_bodies_are_refused(api_client, user, path):
    """No endpoint takes files: a multipart body is a 415, not a parse of whatever it holds."""
    response = api_client.post(path, {"username": "alice", "password": TEST_PASSWORD}, format="multipart")
    assert response.status_code == 415


@pytest.mark.django_db
@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10_000)
def test_a_json_body_over_the_cap_is_413_before_it_is_parsed(api_client, user):
    body = json.dumps({"username": "alice", "password": TEST_PASSWORD, "pad": "x" * 20_000})
    response = api_client.post(LOGIN, body, content_type="application/json")
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]
    within = api_client.post(LOGIN, {"username": "alice", "password": TEST_PASSWORD}, format="json")
    assert within.status_code == 200


@pytest.mark.django_db
@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10_000)
def test_a_form_body_over_the_cap_is_413(api_client, user):
    body = f"username=alice&password=x&pad={'x' * 20_000}"
    response = api_client.post(TOKEN, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413


@pytest.mark.django_db
@override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=10)
def test_a_form_with_too_many_fields_is_400(api_client, user):
    body = "&".join(f"f{n}=x" for n in range(20))
    response = api_client.post(TOKEN, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and "Too many form fields" in response.json()["detail"]


def test_the_cap_is_set():
    from django.conf import settings

    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 1024 * 1024


def _settings_loaded_by(module: str, tmp_path) -> list[str]:
    """Import an entry point in a process with no DJANGO_SETTINGS_MODULE: which settings, and DEBUG."""
    environment = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL"}}
    environment.update(
        VAR_DIR=str(tmp_path / "var"), SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="api.example.com"
    )
    code = f"import {module}; from django.conf import settings as s; print(s.SETTINGS_MODULE, s.DEBUG)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.mark.parametrize("module", ["config.wsgi", "config.asgi", "config.celery"])
def test_server_entry_points_default_to_production(module, tmp_path):
    """`gunicorn config.wsgi` (or uvicorn, or celery) started without a settings module never runs DEBUG."""
    assert _settings_loaded_by(module, tmp_path) == ["config.settings.production", "False"]


def test_manage_py_keeps_the_development_default(tmp_path):
    environment = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL"}}
    environment["VAR_DIR"] = str(tmp_path / "var")
    show = "from django.conf import settings; print('module', settings.SETTINGS_MODULE)"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", show],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert "module config.settings.base" in result.stdout, result.stderr
