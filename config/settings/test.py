"""Tests: fast hashing, generous throttles, in-memory email. Real services when the environment names them."""

import os
from urllib.parse import parse_qs, urlsplit

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import CLOUDINARY_ENABLED, PASSWORD_HASHERS, REST_FRAMEWORK, env


def _cloudinary_is_local() -> bool:
    url = env("CLOUDINARY_URL", default="")
    prefix = parse_qs(urlsplit(url).query).get("upload_prefix", [""])[-1] or env("CLOUDINARY_UPLOAD_PREFIX", default="")
    return urlsplit(prefix).hostname in {"127.0.0.1", "localhost", "::1"}


# The tests bring their own local Cloudinary API (results/tests/cloudinary_server.py, which the
# worker processes they start are pointed at). Credentials of a real account, from the environment
# or .env, would send test uploads and deletions to it.
if CLOUDINARY_ENABLED and not _cloudinary_is_local():
    raise ImproperlyConfigured("Unset CLOUDINARY_URL / CLOUDINARY_* (environment or .env) to run the tests.")

DEBUG = False
ALLOWED_HOSTS = ["*"]
# A fast hasher first for speed; the real ones stay so tests can verify them explicitly.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]
# In-memory email (django.core.mail.outbox), unless EMAIL_URL names an SMTP server on this machine: the
# mail tests start one (accounts/tests/mail_server.py) and point their worker processes at it. Any other
# EMAIL_URL (a real server in a developer's .env) is ignored, so that no test mail leaves the machine.
_email_url = urlsplit(env("EMAIL_URL", default=""))
if not (_email_url.scheme.startswith("smtp") and _email_url.hostname in {"127.0.0.1", "localhost", "::1"}):
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {scope: "10000/min" for scope in REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]},
}
WHITENOISE_AUTOREFRESH = True
# The local test sites (tasks/tests/site_server.py) listen on 127.0.0.1; the egress tests use
# other loopback addresses, or set the allowlist themselves.
EGRESS_ALLOWLIST = env.list("EGRESS_ALLOWLIST", default=["127.0.0.1"])
# Chromium's sandbox cannot start as root, and CI (like this project's development machines) runs
# the tests as root: there, and only there, the browser tests run Chromium without it. Decided here
# rather than in the Makefile or CI so that a bare `pytest` behaves the same, and the worker processes
# the tests start (config.settings.test too) follow. CHROMIUM_NO_SANDBOX in the environment still
# wins; test_runner_sandbox.py proves the sandbox on as a non-root user either way.
CHROMIUM_NO_SANDBOX = env.bool("CHROMIUM_NO_SANDBOX", default=os.geteuid() == 0)
