"""
Settings shared by every environment, with embedded defaults that run on a bare machine.

Everything is read from the environment (and an optional `.env` at the project root) by
django-environ. With nothing set you get SQLite, local media and a local-memory cache
under `var/`; `.env.example` documents every variable.
"""

import hashlib
import secrets
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Everything the service writes at run time (SQLite file, media, broker queue, dev secret).
VAR_DIR = Path(env("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _development_secret() -> str:
    """A random secret generated once into var/, so a bare checkout runs without configuration."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


# GENERAL
# ------------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default=None) or _development_secret()
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = True
USE_TZ = True
ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# DATABASES: https://django-environ.readthedocs.io/en/latest/types.html#environ-env-db-url
# ------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False

# CACHES: Django's own Redis backend when REDIS_URL is set, else per-process memory.
# ------------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "gatehouse",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "gatehouse"}}

# APPS
# ------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "posts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# STATIC AND MEDIA: https://docs.djangoproject.com/en/5.2/ref/settings/#storages
# ------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "media/"
MEDIA_ROOT = VAR_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Serve the admin, browsable API and Swagger UI assets straight from the apps in
# development, so no collectstatic step is needed before `make run`.
WHITENOISE_USE_FINDERS = DEBUG

# AUTHENTICATION
# ------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
# Usernames are unique regardless of case by a functional constraint (accounts.User.Meta),
# which this check does not recognise.
SILENCED_SYSTEM_CHECKS = ["auth.W004"]
AUTHENTICATION_BACKENDS = ["accounts.backends.UsernameOrEmailBackend"]
# Argon2id for new hashes; the bcrypt hashers only verify hashes imported from older
# systems, which Django rehashes with Argon2 at the user's next successful login.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "accounts.hashers.LegacyBCryptPasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Hard upper bound so a megabyte "password" cannot make Argon2 the bottleneck.
PASSWORD_MAX_LENGTH = 4096

# JSON WEB TOKENS: https://django-rest-framework-simplejwt.readthedocs.io/en/latest/settings.html
# ------------------------------------------------------------------------------
ACCESS_TOKEN_EXPIRE_MINUTES = env.int("ACCESS_TOKEN_EXPIRE_MINUTES", default=30)
REFRESH_TOKEN_EXPIRE_DAYS = env.int("REFRESH_TOKEN_EXPIRE_DAYS", default=7)
JWT_ALGORITHM = env("JWT_ALGORITHM", default="HS256")


def _jwt_keys() -> tuple[str, str]:
    """(signing key, verifying key). HS*: a shared secret; RS*/ES*: PEM files."""
    if JWT_ALGORITHM.startswith("HS"):
        # A key of its own, derived from SECRET_KEY, so a JWT signature never doubles as
        # a signature of Django's (sessions, password reset) and vice versa.
        derived = hashlib.sha256(f"gatehouse.jwt:{SECRET_KEY}".encode()).hexdigest()
        return env("JWT_SIGNING_KEY", default=derived), ""
    private_path = env("JWT_PRIVATE_KEY_FILE")
    public_path = env("JWT_PUBLIC_KEY_FILE")
    return Path(private_path).read_text(), Path(public_path).read_text()


_jwt_signing_key, _jwt_verifying_key = _jwt_keys()
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=ACCESS_TOKEN_EXPIRE_MINUTES),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=REFRESH_TOKEN_EXPIRE_DAYS),
    "ALGORITHM": JWT_ALGORITHM,
    "SIGNING_KEY": _jwt_signing_key,
    "VERIFYING_KEY": _jwt_verifying_key,
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "UPDATE_LAST_LOGIN": False,
    "LEEWAY": 0,
}
# How long a validated login session (with its user) stays cached, in seconds. Revocation
# deletes the entry, so this is safe only with a cache every process shares: on by
# default with Redis, off with the per-process memory cache.
AUTH_SESSION_CACHE_SECONDS = env.int("AUTH_SESSION_CACHE_SECONDS", default=300 if REDIS_URL else 0)
# last_seen is written at most this often per session (and last_used per API key).
AUTH_LAST_SEEN_RESOLUTION_SECONDS = 60

# DJANGO REST FRAMEWORK: https://www.django-rest-framework.org/api-guide/settings/
# ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.JWTSessionAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.exceptions.api_exception_handler",
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    "DEFAULT_THROTTLE_RATES": {
        # Login and the OAuth2 token endpoint share these (accounts/throttling.py).
        "login_address": env("THROTTLE_LOGIN_ADDRESS_RATE", default="30/min"),
        "login_username": env("THROTTLE_LOGIN_USERNAME_RATE", default="10/min"),
        "register_address": env("THROTTLE_REGISTER_ADDRESS_RATE", default="20/hour"),
        "register_username": env("THROTTLE_REGISTER_USERNAME_RATE", default="5/hour"),
        "refresh_address": env("THROTTLE_REFRESH_ADDRESS_RATE", default="60/min"),
    },
}

# OPENAPI: https://drf-spectacular.readthedocs.io/en/latest/settings.html
# ------------------------------------------------------------------------------
SPECTACULAR_SETTINGS = {
    "TITLE": "Gatehouse API",
    "DESCRIPTION": "Accounts, JWT sessions, API keys, posts and browser tasks.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Swagger UI and ReDoc assets come from drf-spectacular-sidecar, served by us: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": True},
    "COMPONENT_SPLIT_REQUEST": True,
}

# CORS: https://github.com/adamchainz/django-cors-headers#configuration
# ------------------------------------------------------------------------------
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_ALLOW_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "x-api-key",
    "x-csrftoken",
    "x-requested-with",
)

# CELERY: https://docs.celeryq.dev/en/stable/userguide/configuration.html
# ------------------------------------------------------------------------------
# With no broker configured, kombu's filesystem transport under var/ needs no server;
# a separate worker process still runs the jobs.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="") or "filesystem://"
CELERY_BROKER_DIR = VAR_DIR / "broker"
if CELERY_BROKER_URL == "filesystem://":
    for _folder in ("queue", "processed"):
        (CELERY_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "store_processed": False,
    }
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE

# LOGGING
# ------------------------------------------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
