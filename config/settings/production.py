"""Production: no embedded secret, persistent database connections, secure transport."""

from django.core.exceptions import ImproperlyConfigured

from config.logging import logging_config

from .base import *  # noqa: F403
from .base import DATABASES, LOG_LEVEL, REST_FRAMEWORK, STORAGES, env

DEBUG = env.bool("DEBUG", default=False)
# Refuse to start on the generated development secret: every replica must share one.
SECRET_KEY = env("SECRET_KEY", default="")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY must be set in production (DJANGO_SETTINGS_MODULE=config.settings.production)."
    )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")

# DATABASES: keep connections open across requests. Opening a PostgreSQL connection per
# request (Django's default, CONN_MAX_AGE=0) measured 6x slower on this service.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# SECURITY: https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Health probes arrive over plain HTTP from the orchestrator, not through the proxy.
SECURE_REDIRECT_EXEMPT = [r"^health"]
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Behind a proxy every request comes from the proxy's address: with NUM_PROXIES=0 all clients would
    # share one per-address throttle bucket (one guesser locks everyone out) and every recorded address
    # would be the proxy's. A proxy that says the scheme is a proxy that must be counted.
    if REST_FRAMEWORK["NUM_PROXIES"] < 1:
        raise ImproperlyConfigured(
            "SECURE_PROXY_SSL_HEADER is on but NUM_PROXIES is 0: set NUM_PROXIES to the number of reverse "
            "proxies in front of Gatehouse (1 for one load balancer), so client addresses are the clients'."
        )
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# STATIC: collected and compressed, served by WhiteNoise.
# Only the static files storage changes: the media aliases of base (Cloudinary's too) are kept.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}}
WHITENOISE_USE_FINDERS = False

# LOGGING: one JSON object per line (config/logging.py), with the request or task id; LOG_FORMAT=plain
# switches back to text for a person reading a terminal.
LOG_FORMAT = env("LOG_FORMAT", default="json")
LOGGING = logging_config(json_lines=LOG_FORMAT == "json", level=LOG_LEVEL)
