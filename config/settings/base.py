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
from urllib.parse import parse_qs, urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

from config.logging import logging_config

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
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # libpq waits for a connection without limit: an unreachable database host would hold each request for
    # the operating system's TCP timeout (minutes) instead of answering 503 (config/middleware.py).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5)
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The worker and beat are separate processes writing the same SQLite file as the web
    # server: wait for the lock instead of failing ("database is locked"), take the write
    # lock when a transaction begins (no deadlock upgrading a read lock), and let readers
    # and the writer proceed together (WAL).
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL;",
    }

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
    "apikeys",
    "posts",
    "tasks",
    "results",
]

# The largest request body read (the API's parsers and Django's forms alike): a 413 from the API above it.
# The largest legitimate body, a task with its steps or a post, is tens of kilobytes.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)

MIDDLEWARE = [
    # First, so that every line logged while serving a request carries its id (config/logging.py).
    "config.middleware.RequestIDMiddleware",
    # A view that cannot reach the database answers 503 with Retry-After, not 500.
    "config.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "config.middleware.PageMessageMiddleware",  # Django's, for the admin's pages only
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Searched before the apps' own templates: a deployer's accounts/email/*.txt|.html override the mails.
        "DIRS": env.list("TEMPLATE_DIRS", default=[]),
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
# Sensitive actions (creating API keys and provider keys, changing the email, turning two-factor off)
# need a password login or POST /auth/reauth within this many minutes.
REAUTH_WINDOW_MINUTES = env.int("REAUTH_WINDOW_MINUTES", default=15)
# Security events (GET /auth/events, the admin) older than this are deleted by the daily prune job
# (accounts.prune_auth_records): a year covers an annual review and most incident look-backs. 0 keeps them.
SECURITY_EVENTS_RETENTION_DAYS = env.int("SECURITY_EVENTS_RETENTION_DAYS", default=365)

# EMAIL: https://django-environ.readthedocs.io/en/latest/types.html#email-url
# ------------------------------------------------------------------------------
# One URL sets the backend and its options (EMAIL_BACKEND, EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER,
# EMAIL_HOST_PASSWORD, EMAIL_USE_TLS/SSL): smtp://user:pass@host:587, smtp+tls://..., smtp+ssl://...,
# consolemail:// (the default: `make run` prints every mail), dummymail://. Mails are sent by the worker
# (accounts.jobs.send_account_mail), never inside a request.
globals().update(env.email_url("EMAIL_URL", default="consolemail://"))
# A hung SMTP server must not hold a worker process: the job fails and Celery retries it with back-off.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Gatehouse <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Where the links in the mails point (reset, verification): the web app that shows the form and POSTs
# uid and token to the API. Empty: the origin of the API request that caused the mail (its Host header,
# which ALLOWED_HOSTS vets); set it in production so that no Host header ever decides where a link goes.
FRONTEND_URL = env("FRONTEND_URL", default="").rstrip("/")
FRONTEND_PASSWORD_RESET_PATH = env("FRONTEND_PASSWORD_RESET_PATH", default="/password-reset")
FRONTEND_EMAIL_VERIFY_PATH = env("FRONTEND_EMAIL_VERIFY_PATH", default="/verify-email")

# ACCOUNTS: recovery and verification (README "Password reset and email verification")
# ------------------------------------------------------------------------------
# optional: login works before the address is verified, and an address is taken at registration.
# mandatory: login needs a verified address, and an address is taken only once verified (the first to
# verify keeps it), so nobody can squat someone else's address by registering it first.
ACCOUNT_EMAIL_VERIFICATION = env("ACCOUNT_EMAIL_VERIFICATION", default="optional").strip().lower()
if ACCOUNT_EMAIL_VERIFICATION not in ("optional", "mandatory"):
    raise ImproperlyConfigured("ACCOUNT_EMAIL_VERIFICATION must be optional or mandatory.")
# Seconds a password reset link works (and it works once: https://docs.djangoproject.com/en/5.2/ref/settings/#password-reset-timeout).
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT", default=60 * 60)
# Seconds an email verification link works.
EMAIL_VERIFICATION_TIMEOUT = env.int("EMAIL_VERIFICATION_TIMEOUT", default=3 * 24 * 60 * 60)

# JSON WEB TOKENS: https://django-rest-framework-simplejwt.readthedocs.io/en/latest/settings.html
# ------------------------------------------------------------------------------
ACCESS_TOKEN_EXPIRE_MINUTES = env.int("ACCESS_TOKEN_EXPIRE_MINUTES", default=30)
REFRESH_TOKEN_EXPIRE_DAYS = env.int("REFRESH_TOKEN_EXPIRE_DAYS", default=7)
JWT_ALGORITHM = env("JWT_ALGORITHM", default="HS256")
# HS* keys shorter than this are refused: RFC 7518 section 3.2 asks for at least the hash's size.
JWT_SIGNING_KEY_MIN_BYTES = 32
JWT_SIGNING_KEY = ""
JWT_PRIVATE_KEY_FILE = ""
if JWT_ALGORITHM.startswith("HS"):
    # A key of its own, derived from SECRET_KEY, so a JWT signature never doubles as a signature of
    # Django's (sessions, password reset) and vice versa. Set but empty (the compose file's worker) means unset.
    JWT_SIGNING_KEY = (
        env("JWT_SIGNING_KEY", default="") or hashlib.sha256(f"gatehouse.jwt:{SECRET_KEY}".encode()).hexdigest()
    )
    if len(JWT_SIGNING_KEY.encode()) < JWT_SIGNING_KEY_MIN_BYTES:
        raise ImproperlyConfigured(
            f"JWT_SIGNING_KEY must be at least {JWT_SIGNING_KEY_MIN_BYTES} bytes long (or unset, to derive one)."
        )
else:
    # RS*, ES*, EdDSA: the keyring (accounts/jwks.py), one PEM file of private keys, the last one signing;
    # `manage.py rotate_jwt_key` creates it or adds a key. The public keys are derived from it (and published
    # at /.well-known/jwks.json): JWT_PUBLIC_KEY_FILE is no longer read.
    JWT_PRIVATE_KEY_FILE = env("JWT_PRIVATE_KEY_FILE")


def _default_jwt_issuer() -> str:
    """The server's origin from its first ALLOWED_HOSTS entry (a wildcard names no origin: "gatehouse").
    Settings-time, not the request's Host: a token must name the same issuer whichever host issued it."""
    host = ALLOWED_HOSTS[0].lstrip(".") if ALLOWED_HOSTS else "*"
    if not host or "*" in host:
        return "gatehouse"
    return f"{'http' if DEBUG else 'https'}://{host}"


# Every token carries both and is refused without them (or with another audience), so a token Gatehouse
# issued for itself is not taken by a service expecting another audience, and vice versa.
JWT_ISSUER = env("JWT_ISSUER", default="") or _default_jwt_issuer()
JWT_AUDIENCE = env("JWT_AUDIENCE", default="gatehouse")
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=ACCESS_TOKEN_EXPIRE_MINUTES),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=REFRESH_TOKEN_EXPIRE_DAYS),
    "ALGORITHM": JWT_ALGORITHM,
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "VERIFYING_KEY": "",
    "AUDIENCE": JWT_AUDIENCE,
    "ISSUER": JWT_ISSUER,
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "UPDATE_LAST_LOGIN": False,
    "LEEWAY": 0,
}
# A session ends this many days after its login, however often it is refreshed.
SESSION_MAX_AGE_DAYS = env.int("SESSION_MAX_AGE_DAYS", default=30)
# Validated login sessions and API keys (with their user) each process keeps in memory, at most, so that a
# warm request costs no query and no round trip (config/local_cache.py). Coherence comes from a Redis pub/sub
# channel that every revocation and every change of a user publishes to, so the cache needs Redis: without
# REDIS_URL, or with 0, every request reads the database.
AUTH_CACHE_ENTRIES = env.int("AUTH_CACHE_ENTRIES", default=10_000)
# last_seen is written at most this often per session (and last_used per API key).
AUTH_LAST_SEEN_RESOLUTION_SECONDS = 60

# API KEYS
# ------------------------------------------------------------------------------
# Most active (not revoked, not expired) keys one user may hold; 0 lifts the cap.
API_KEYS_MAX_ACTIVE_PER_USER = env.int("API_KEYS_MAX_ACTIVE_PER_USER", default=25)

# PROVIDER KEYS AND THE RSA KEYRING: config/crypto.py, docs/provider-keys.md
# ------------------------------------------------------------------------------
# The RSA private key(s) that decrypt what clients encrypt with GET /api/v1/crypto/public-key and
# wrap the data keys of stored provider keys. One PEM file, oldest key first, the last one current
# (`manage.py rotate_rsa_key` appends). Default: the original system's `private_key.pem` at the
# project root if there is one, else var/rsa_private_key.pem, generated on first use. Every web and
# worker process must read the same file: outside DEBUG the generated one is warned about (tasks.W001).
RSA_PRIVATE_KEY_FILE = env("RSA_PRIVATE_KEY_FILE", default="") or str(
    BASE_DIR / "private_key.pem" if (BASE_DIR / "private_key.pem").exists() else VAR_DIR / "rsa_private_key.pem"
)
# The server's own provider keys, used for a user's agent run when the user stored none for that
# provider. OPENAI_BASE_URL (empty: the SDK's default) is the operator's, so the egress policy does
# not apply to it, unlike a user's base_url.
OPENAI_API_KEY = env("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env("OPENAI_BASE_URL", default="")
ANTHROPIC_API_KEY = env("ANTHROPIC_API_KEY", default="")

# DJANGO REST FRAMEWORK: https://www.django-rest-framework.org/api-guide/settings/
# ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apikeys.authentication.APIKeyAuthentication",
        "accounts.authentication.JWTSessionAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # APIKeyScope: a request made with an API key needs the scope the view declares (config/scopes.py).
    # A view that sets its own permission_classes lists it too (a test walks the URLconf for it).
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated", "config.permissions.APIKeyScope"],
    # DRF's two, the JSON one encoding with orjson (config/renderers.py).
    "DEFAULT_RENDERER_CLASSES": ["config.renderers.JSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        # No multipart: no endpoint takes files (config/parsers.py).
        "config.parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "config.schema.AutoSchema",
    "EXCEPTION_HANDLER": "config.exceptions.api_exception_handler",
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    "DEFAULT_THROTTLE_RATES": {
        # Login and the OAuth2 token endpoint share these (accounts/throttling.py); the admin's login form too.
        # Every attempt from one address: a guesser spraying many accounts from one place.
        "login_address": env("THROTTLE_LOGIN_ADDRESS_RATE", default="30/min"),
        # FAILED passwords against one account from any address. Successes spend nothing, and once it is spent
        # an address the owner logged in from before is still let in, so it can be strict: it stops a
        # distributed guesser at ~700 a day without letting anyone lock the owner out.
        "login_account": env("THROTTLE_LOGIN_ACCOUNT_RATE", default="30/hour"),
        # FAILED passwords against one account from one address, the owner's usual ones included: a person
        # mistyping gets 10 tries an hour there, a guesser at that address no more.
        "login_account_address": env("THROTTLE_LOGIN_ACCOUNT_ADDRESS_RATE", default="10/hour"),
        # POST /auth/reauth per account: only the holder of the account's token spends it.
        "login_user": env("THROTTLE_REAUTH_RATE", default="10/min"),
        # Per address: offices, campuses and mobile carriers put many people behind one address, and an
        # onboarding session registers them together; allauth allows 20 a minute. 60 an hour lets a room of
        # people register at once while a script from one address still makes no more than ~1400 accounts a
        # day, each of which must verify its email (and the per-username limit stops retries on one name).
        "register_address": env("THROTTLE_REGISTER_ADDRESS_RATE", default="60/hour"),
        "register_username": env("THROTTLE_REGISTER_USERNAME_RATE", default="5/hour"),
        # Per account: the current password is checked, so a stolen access token must not become a guesser.
        "password_change_user": env("THROTTLE_PASSWORD_CHANGE_RATE", default="10/hour"),
        # Per account: each change mails both addresses, so the limit also bounds mail sent on its behalf.
        "email_change_user": env("THROTTLE_EMAIL_CHANGE_RATE", default="10/hour"),
        "refresh_address": env("THROTTLE_REFRESH_ADDRESS_RATE", default="60/min"),
        # Reset requests per client address, and per address asked for (hashed, lower-case).
        "password_reset_address": env("THROTTLE_PASSWORD_RESET_ADDRESS_RATE", default="10/hour"),
        "password_reset_email": env("THROTTLE_PASSWORD_RESET_EMAIL_RATE", default="3/hour"),
        "verify_resend_user": env("THROTTLE_VERIFY_RESEND_RATE", default="3/hour"),
        # Two-factor codes tried against one account, at any endpoint that takes one, on top of the
        # 5 attempts per mfa_token: with 3 valid codes of 10**6 at a time, 20/hour leaves a guesser ~0.15% a day.
        "mfa_account": env("THROTTLE_MFA_RATE", default="20/hour"),
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
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "accounts.schema.split_alternative_security",
    ],
    # A task's expected_status and a result's actual_status share one set of values.
    "ENUM_NAME_OVERRIDES": {"RunOutcomeEnum": "tasks.models.ExpectedStatus"},
}

# CORS: https://github.com/adamchainz/django-cors-headers#configuration
# ------------------------------------------------------------------------------
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
if not CORS_ALLOWED_ORIGINS:
    # No other origin may call the API: the middleware would add nothing but `Vary: origin` to every response,
    # at 4% of a public request's instructions (docs/benchmark.md).
    MIDDLEWARE.remove("corsheaders.middleware.CorsMiddleware")
# Cookie mode (accounts/views.py) from another origin of the same site needs the browser to send the cookie.
CORS_ALLOW_CREDENTIALS = env.bool("CORS_ALLOW_CREDENTIALS", default=False)
CORS_ALLOW_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "x-api-key",
    "x-csrftoken",
    "x-requested-with",
)

# TASKS AND RESULTS: browser runs (tasks/) and the files they record (results/)
# ------------------------------------------------------------------------------
TASKS_MAX_STEPS = 100
# Runs one user may have queued or running at once; 0 lifts the cap.
TASKS_MAX_ACTIVE_PER_USER = env.int("TASKS_MAX_ACTIVE_PER_USER", default=10)
# Runs one user may queue in any 24 hours (initiates; an admin's re-run is not counted); 0 lifts
# the quota. Beyond it initiate answers 429 with Retry-After. docs/runner.md "Quotas and fair scheduling".
TASKS_DAILY_RUNS_PER_USER = env.int("TASKS_DAILY_RUNS_PER_USER", default=200)
# Fairness: at most this many of a user's queued runs are sent to the broker at a time; the others
# wait in the database and are sent, oldest first, as the user's runs end. 0: all sent at once.
TASKS_DISPATCH_PER_USER = env.int("TASKS_DISPATCH_PER_USER", default=2)
TASKS_STEP_TIMEOUT_MS = env.int("TASK_STEP_TIMEOUT_MS", default=10_000)
TASKS_NAVIGATION_TIMEOUT_MS = env.int("TASK_NAVIGATION_TIMEOUT_MS", default=20_000)
# Chromium without its sandbox: only where the sandbox cannot start (a root worker). Off by default;
# the worker logs a warning at start when it is on (docs/runner.md, "Sandbox").
CHROMIUM_NO_SANDBOX = env.bool("CHROMIUM_NO_SANDBOX", default=False)
# Hard limit: Celery kills a run still going after this many seconds, and the sweeper
# fails it. Soft limit: the run stops itself (and still records its files) before that.
TASKS_TIME_LIMIT = env.int("TASK_TIME_LIMIT", default=300)
TASKS_SOFT_TIME_LIMIT = env.int("TASK_SOFT_TIME_LIMIT", default=max(TASKS_TIME_LIMIT - 30, 1))
# A running run writes a heartbeat every few seconds; one silent for TASK_HEARTBEAT_TIMEOUT
# seconds lost its worker (killed, crashed, machine gone).
TASKS_HEARTBEAT_SECONDS = env.float("TASK_HEARTBEAT_SECONDS", default=5)
TASKS_HEARTBEAT_TIMEOUT = env.int("TASK_HEARTBEAT_TIMEOUT", default=60)
# Attempts per run: a run whose worker was lost is started again until this many tried.
TASKS_MAX_ATTEMPTS = env.int("TASK_MAX_ATTEMPTS", default=2)
# A queued run no worker took after this long is sent again (a lost message; a duplicate
# is a no-op), and failed after TASK_QUEUE_TIMEOUT.
TASKS_QUEUE_RESEND_AFTER = env.int("TASK_QUEUE_RESEND_AFTER", default=300)
TASKS_QUEUE_TIMEOUT = env.int("TASK_QUEUE_TIMEOUT", default=3600)
# How often a running run reads its own status to notice a cancel (one indexed query).
TASKS_CANCEL_POLL_SECONDS = env.float("TASK_CANCEL_POLL_SECONDS", default=1.0)
TASKS_SWEEP_INTERVAL = env.int("TASK_SWEEP_INTERVAL", default=30)
# What the browser may reach besides public addresses: host names, IP addresses or CIDR blocks,
# each optionally with ":port" (docs/runner.md, "Egress policy"). Checked by `manage.py check`.
EGRESS_ALLOWLIST = env.list("EGRESS_ALLOWLIST", default=[])
# Which STORAGES alias keeps each kind of result file. Local storage files are served to
# their owner by the API (never under a public /media/ URL); other storages use their
# own delivery URLs.
RESULTS_STORAGES = {"gif": "default", "script": "default", "history": "default"}
RESULTS_GIF_MAX_WIDTH = env.int("RESULTS_GIF_MAX_WIDTH", default=800)
# The screenshots one run keeps (already shrunk to RESULTS_GIF_MAX_WIDTH, ~50 KB a step for a
# photo-heavy page at 800 px, so 100 steps take ~5 MB): beyond it the run goes on and its
# frames are thinned (one step in 2, 4, ...; the first and the last kept), with a warning.
# 16 MiB is 3x that run, and holds a worker's frame memory per run well under the ~170 MB a
# 100-step run could keep at worst (800x2160 frames of noise); docs/runner.md "Resource bounds".
TASKS_MAX_FRAME_BYTES = env.int("TASKS_MAX_FRAME_BYTES", default=16 * 1024 * 1024)
# Agent runs (a language model drives the browser; docs/agent.md). Each model call gives up after
# this long (and is retried on 429/5xx while the run's time limit allows).
TASKS_AGENT_CALL_TIMEOUT_SECONDS = env.float("TASKS_AGENT_CALL_TIMEOUT_SECONDS", default=60.0)
# Also show the model a screenshot of each page (for models that take images; costs tokens).
TASKS_AGENT_SCREENSHOTS = env.bool("TASKS_AGENT_SCREENSHOTS", default=False)
# The model used when a task's agent settings name none (openai_compatible has no default: the
# server's models are the operator's).
TASKS_AGENT_DEFAULT_MODELS = {
    "openai": env.str("OPENAI_DEFAULT_MODEL", default="gpt-4o"),
    "anthropic": env.str("ANTHROPIC_DEFAULT_MODEL", default="claude-sonnet-4-5"),
}
# File deletions that failed (storage unreachable) are retried this often, with backoff.
RESULTS_DELETION_RETRY_INTERVAL = env.int("RESULTS_DELETION_RETRY_INTERVAL", default=300)

# CLOUDINARY: result files on Cloudinary when credentials are set; docs/storage.md
# ------------------------------------------------------------------------------
# The cloudinary SDK reads the environment itself (results/cloudinary_backend.py): CLOUDINARY_URL
# with all its query parameters (upload_prefix, cname, secure_distribution, private_cdn, ...),
# or, when CLOUDINARY_CLOUD_NAME is set, CLOUDINARY_API_KEY, CLOUDINARY_API_SECRET and every
# other CLOUDINARY_* variable. Here we only decide whether it is on and check it is complete.
CLOUDINARY_URL = env("CLOUDINARY_URL", default="")
_cloudinary_parts = {
    name: env(name, default="") for name in ("CLOUDINARY_CLOUD_NAME", "CLOUDINARY_API_KEY", "CLOUDINARY_API_SECRET")
}
_cloudinary_secure = ""
if _cloudinary_parts["CLOUDINARY_CLOUD_NAME"]:
    _missing = [name for name, value in _cloudinary_parts.items() if not value]
    if _missing:
        raise ImproperlyConfigured(f"CLOUDINARY_CLOUD_NAME is set without {' and '.join(_missing)}: set all three.")
    _cloudinary_secure = env("CLOUDINARY_SECURE", default="")
elif CLOUDINARY_URL:
    _parsed = urlsplit(CLOUDINARY_URL)
    if _parsed.scheme != "cloudinary" or not (_parsed.hostname and _parsed.username and _parsed.password):
        raise ImproperlyConfigured("CLOUDINARY_URL must look like cloudinary://API_KEY:API_SECRET@CLOUD_NAME[?...].")
    _cloudinary_secure = parse_qs(_parsed.query).get("secure", [""])[-1]
CLOUDINARY_ENABLED = bool(_cloudinary_parts["CLOUDINARY_CLOUD_NAME"] or CLOUDINARY_URL)
# django-cloudinary-storage's settings. It calls cloudinary.config(secure=SECURE) on import, so
# SECURE follows the environment (`secure=false` in the URL is the string "false" to the SDK).
CLOUDINARY_STORAGE = {
    # Every public id starts with this folder; give each environment sharing an account its own
    # (the orphan command, manage.py cloudinary_orphans, only looks under it).
    "PREFIX": env("RESULTS_CLOUDINARY_FOLDER", default="gatehouse"),
    "MEDIA_TAG": "gatehouse-results",
    "SECURE": _cloudinary_secure.strip().lower() not in ("false", "0", "no", "off"),
}
CLOUDINARY_STORAGES = {
    alias: {"BACKEND": "results.cloudinary_backend.CloudinaryStorage", "OPTIONS": {"resource_type": resource_type}}
    for alias, resource_type in (("cloudinary_image", "image"), ("cloudinary_raw", "raw"))
}
if CLOUDINARY_ENABLED:
    # The GIF as an image, the replay script and the history as raw files.
    STORAGES = {**STORAGES, **CLOUDINARY_STORAGES}
    RESULTS_STORAGES = {"gif": "cloudinary_image", "script": "cloudinary_raw", "history": "cloudinary_raw"}
# Where a file goes when its storage keeps failing (the result then carries a warning).
RESULTS_FALLBACK_STORAGE = "default"
# Seconds a storage call may wait for an answer (connect: at most 3).
RESULTS_STORAGE_TIMEOUT = env.float("RESULTS_STORAGE_TIMEOUT", default=10.0)
# Tries per file upload when the storage does not answer or fails (5xx), waiting BACKOFF, 2 x BACKOFF, ...
RESULTS_UPLOAD_ATTEMPTS = env.int("RESULTS_UPLOAD_ATTEMPTS", default=3)
RESULTS_UPLOAD_BACKOFF = env.float("RESULTS_UPLOAD_BACKOFF", default=1.0)

# CELERY: https://docs.celeryq.dev/en/stable/userguide/configuration.html
# ------------------------------------------------------------------------------
# With no broker configured, kombu's filesystem transport under var/ needs no server;
# a separate worker process still runs the jobs.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="") or "filesystem://"
CELERY_BROKER_DIR = VAR_DIR / "broker"
if CELERY_BROKER_URL == "filesystem://":
    for _folder in ("queue", "processed", "control"):
        (CELERY_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        # Broadcast (remote control) messages; kombu's default is ./control in the working directory.
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    # A Redis broker that refuses connections fails a publish at once; one that hangs (frozen, a half-open
    # connection) would hold the web worker that publishes forever (kombu's default is no socket timeout).
    # The worker's BRPOP waits 1 s for a message, so 3 s of silence means a dead connection.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 3}
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A publish is retried once, at once (a pooled connection that Redis closed by restarting is replaced), then
# fails: the web request that queued a run answers anyway, and the run is sent again by the sweeper
# (tasks/services/scheduling.py). Celery's default, three retries 0.2 s apart, only makes the request slower.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}
CELERY_TIMEZONE = TIME_ZONE
# Reliability: a message is acknowledged only once its job finished, and given back when
# the worker process dies; one message at a time per worker process (with acks_late the message
# being worked on counts against the prefetch, so a busy process reserves nothing more). Which
# user's run is sent at all is decided before the broker: TASKS_DISPATCH_PER_USER.
# Two queues. "mail" carries the account mails, whose jobs make reset and verification tokens with
# SECRET_KEY; "celery" everything else (browser runs, the sweeper). A worker started without -Q takes
# both (make run, the tests, the smoke test); in Docker the browser worker takes only "celery", so the
# container that renders untrusted pages never holds the web's SECRET_KEY, and the mailer takes "mail".
CELERY_TASK_DEFAULT_QUEUE = "celery"
# Declared as options rather than kombu Queues, so that reading the settings does not import kombu (config/__init__.py).
CELERY_TASK_QUEUES = {"celery": {"routing_key": "celery"}, "mail": {"routing_key": "mail"}}
CELERY_TASK_ROUTES = {"accounts.send_account_mail": {"queue": "mail"}}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = TASKS_TIME_LIMIT
CELERY_TASK_SOFT_TIME_LIMIT = TASKS_SOFT_TIME_LIMIT
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    # Fails runs past their time limit or whose worker died, re-sends lost queued runs.
    "tasks-sweep-stale-runs": {
        "task": "tasks.sweep_stale_runs",
        "schedule": TASKS_SWEEP_INTERVAL,
        "options": {"expires": TASKS_SWEEP_INTERVAL},
    },
    "results-retry-file-deletions": {
        "task": "results.retry_file_deletions",
        "schedule": RESULTS_DELETION_RETRY_INTERVAL,
        "options": {"expires": RESULTS_DELETION_RETRY_INTERVAL},
    },
    # Expired refresh-token records, long-ended login sessions, security events past their retention.
    "accounts-prune-auth-records": {
        "task": "accounts.prune_auth_records",
        "schedule": 24 * 60 * 60,
        "options": {"expires": 60 * 60},
    },
}

# LOGGING
# ------------------------------------------------------------------------------
# Plain lines for development, JSON lines in production (LOG_FORMAT=json|plain overrides); either
# way with the request (or Celery task) id, and with tokens, keys and passwords redacted.
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOG_FORMAT = env("LOG_FORMAT", default="plain")
LOGGING = logging_config(json_lines=LOG_FORMAT == "json", level=LOG_LEVEL)
