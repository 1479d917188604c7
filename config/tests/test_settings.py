"""Settings are read at import, so each case runs Django in a fresh process with its own environment."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parents[2]


def run_django(code: str, tmp_path, **env):
    environment = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}}
    environment.update(VAR_DIR=str(tmp_path / "var"), **env)
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
    )


def manage(*args, tmp_path, **env):
    environment = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}}
    environment.update(VAR_DIR=str(tmp_path / "var"), **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=180
    )


PRODUCTION = {"DJANGO_SETTINGS_MODULE": "config.settings.production", "ALLOWED_HOSTS": "api.example.com"}


def test_production_refuses_to_start_without_secret_key(tmp_path):
    result = manage("check", tmp_path=tmp_path, **PRODUCTION)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_refuses_a_proxy_it_does_not_count(tmp_path):
    """Behind a proxy with NUM_PROXIES=0 every client would share the proxy's address, and its throttle bucket."""
    env = {**PRODUCTION, "SECRET_KEY": secrets.token_urlsafe(50), "SECURE_PROXY_SSL_HEADER": "true"}
    refused = manage("check", tmp_path=tmp_path, **env, NUM_PROXIES="0")
    assert refused.returncode != 0
    assert "NUM_PROXIES" in refused.stderr
    shown = "from django.conf import settings as s; print(s.REST_FRAMEWORK['NUM_PROXIES'])"
    counted = run_django(shown, tmp_path, **env, NUM_PROXIES="1")
    assert counted.stdout.split() == ["1"], counted.stderr


def test_production_check_deploy_is_clean_and_keeps_connections(tmp_path):
    # A keyring every replica reads: the default one generated in var/ is per machine (tasks.W001); and a mail
    # server: the console backend would write reset links into the logs (accounts.W001).
    keyring = str(tmp_path / "secrets" / "rsa_private_key.pem")
    env = {
        **PRODUCTION,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "RSA_PRIVATE_KEY_FILE": keyring,
        "EMAIL_URL": "smtp+tls://mailer:secret@mail.example.com:587",
    }
    result = manage("check", "--deploy", "--fail-level", "WARNING", tmp_path=tmp_path, **env)
    assert result.returncode == 0, result.stdout + result.stderr
    per_machine = {key: value for key, value in env.items() if key != "RSA_PRIVATE_KEY_FILE"}
    assert "tasks.W001" in manage("check", tmp_path=tmp_path, **per_machine).stderr
    console_mail = {key: value for key, value in env.items() if key != "EMAIL_URL"}
    assert "accounts.W001" in manage("check", tmp_path=tmp_path, **console_mail).stderr
    shown = run_django(
        "from django.conf import settings as s; d = s.DATABASES['default']; "
        "print(d['CONN_MAX_AGE'], d['CONN_HEALTH_CHECKS'])",
        tmp_path,
        **env,
    )
    assert shown.stdout.split() == ["600", "True"]


def test_development_secret_is_generated_once(tmp_path):
    show = "from django.conf import settings; print(settings.SECRET_KEY)"
    first = run_django(show, tmp_path, DJANGO_SETTINGS_MODULE="config.settings.base")
    second = run_django(show, tmp_path, DJANGO_SETTINGS_MODULE="config.settings.base")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout and len(first.stdout.strip()) >= 50
    assert (tmp_path / "var" / "secret_key").stat().st_mode & 0o077 == 0


@pytest.fixture
def rsa_key_files(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = tmp_path / "jwt.pem"
    public = tmp_path / "jwt.pub"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def test_rs256_tokens_sign_with_the_private_key_and_verify_with_the_public_one(tmp_path, rsa_key_files):
    private, public = rsa_key_files
    code = (
        "import jwt; from accounts.tokens import SessionRefreshToken as R; "
        "r = R(); r['sid'] = 'x'; r['user_id'] = '1'; "
        "t = str(r.access_token); print(jwt.get_unverified_header(t)['alg']); "
        "from accounts.tokens import SessionAccessToken as A; print(A(t)['sid'])"
    )
    result = run_django(
        code,
        tmp_path,
        DJANGO_SETTINGS_MODULE="config.settings.base",
        JWT_ALGORITHM="RS256",
        JWT_PRIVATE_KEY_FILE=str(private),
        JWT_PUBLIC_KEY_FILE=str(public),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["RS256", "x"]


def test_a_jwt_signing_key_shorter_than_32_bytes_is_refused_at_start(tmp_path):
    short = run_django("", tmp_path, DJANGO_SETTINGS_MODULE="config.settings.base", JWT_SIGNING_KEY="x" * 31)
    assert short.returncode != 0
    assert "JWT_SIGNING_KEY must be at least 32 bytes" in short.stderr
    assert "x" * 31 not in short.stderr  # the key itself is not echoed
    enough = run_django("", tmp_path, DJANGO_SETTINGS_MODULE="config.settings.base", JWT_SIGNING_KEY="x" * 32)
    assert enough.returncode == 0, enough.stderr
    # Set but empty (the compose file's worker): the derived key, as if unset.
    empty = run_django(
        "from django.conf import settings; print(len(settings.JWT_SIGNING_KEY))",
        tmp_path,
        DJANGO_SETTINGS_MODULE="config.settings.base",
        JWT_SIGNING_KEY="",
    )
    assert empty.stdout.split() == ["64"], empty.stderr


def test_the_jwt_issuer_defaults_to_the_first_allowed_host(tmp_path):
    code = "from django.conf import settings; print(settings.JWT_ISSUER, settings.JWT_AUDIENCE)"
    base = {"DJANGO_SETTINGS_MODULE": "config.settings.base"}
    result = run_django(code, tmp_path, **base, DEBUG="false", ALLOWED_HOSTS="auth.example.com,api.example.com")
    assert result.stdout.split() == ["https://auth.example.com", "gatehouse"], result.stderr
    result = run_django(code, tmp_path, **base, JWT_ISSUER="https://id.example.com", JWT_AUDIENCE="shop")
    assert result.stdout.split() == ["https://id.example.com", "shop"], result.stderr


CORS_PREFLIGHT = """
from django.test import Client
from django.conf import settings
response = Client().options(
    "/api/v1/hello", HTTP_ORIGIN="https://app.example.com", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET"
)
print("corsheaders.middleware.CorsMiddleware" in settings.MIDDLEWARE, response.get("Access-Control-Allow-Origin"))
"""


def test_cors_answers_the_configured_origins_and_costs_nothing_without_them(tmp_path):
    base = {"DJANGO_SETTINGS_MODULE": "config.settings.base", "ALLOWED_HOSTS": "testserver"}
    configured = run_django(CORS_PREFLIGHT, tmp_path, **base, CORS_ALLOWED_ORIGINS="https://app.example.com")
    assert configured.stdout.split() == ["True", "https://app.example.com"], configured.stderr
    other = run_django(
        CORS_PREFLIGHT.replace("https://app.example.com", "https://evil.example.com"),
        tmp_path,
        **base,
        CORS_ALLOWED_ORIGINS="https://app.example.com",
    )
    assert other.stdout.split() == ["True", "None"], other.stderr
    unconfigured = run_django(CORS_PREFLIGHT, tmp_path, **base)
    assert unconfigured.stdout.split() == ["False", "None"], unconfigured.stderr
