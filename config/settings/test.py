"""Tests: fast hashing, generous throttles, in-memory email. Real services when the environment names them."""

from .base import *  # noqa: F403
from .base import PASSWORD_HASHERS, REST_FRAMEWORK

DEBUG = False
ALLOWED_HOSTS = ["*"]
# A fast hasher first for speed; the real ones stay so tests can verify them explicitly.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Tests run in one process, so the session cache is safe even with the memory backend.
AUTH_SESSION_CACHE_SECONDS = 300
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {scope: "10000/min" for scope in REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]},
}
WHITENOISE_AUTOREFRESH = True
