"""gunicorn settings for production: ``gunicorn -c config/gunicorn.py config.wsgi``.

Every value can be changed from the environment (.env.example lists them); the defaults suit one
container or VM. Docs: https://docs.gunicorn.org/en/stable/settings.html
"""

import os

# Production unless told otherwise: this file is how the production web server starts.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")


def _cpu_count() -> int:
    """CPUs this process may run on (respects taskset/cpusets, unlike os.cpu_count())."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{os.environ.get('PORT') or 8000}"
# Sync workers: requests are short (browser runs happen in Celery), and CPU-bound work (Argon2)
# wants processes, not threads. The classic 2 x CPUs + 1; WEB_CONCURRENCY overrides it.
workers = _int("WEB_CONCURRENCY", 2 * _cpu_count() + 1)
threads = _int("GUNICORN_THREADS", 1)
# A worker silent for this long is killed and replaced (a stuck request), logged CRITICAL.
timeout = _int("GUNICORN_TIMEOUT", 30)
# On SIGTERM, workers finish the requests they hold for up to this long before they are killed.
# Docker's stop_grace_period (docker/compose.yml) is longer than this, so the container is not
# SIGKILLed first.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Keep-alive behind a load balancer: longer than nothing, shorter than the balancer's idle timeout.
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Worker recycling is off by default: under even load, max_requests restarts every worker within
# seconds of each other (measured here: 3-6 s with no worker serving). Set GUNICORN_MAX_REQUESTS
# (with a jitter of about half of it) only to contain a memory leak.
max_requests = _int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 0)
# Worker heartbeat files in memory, not on a container's overlay filesystem (which can stall).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108

# Logs: both to the console, as JSON lines (config/logging.py). The access line carries the path
# without its query string and no request header, so no credential can end up in it.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # empty: no access log
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
logger_class = "config.logging.GunicornJSONLogger"
# X-Forwarded-* is trusted from these addresses only (gunicorn's own FORWARDED_ALLOW_IPS variable).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
proc_name = "gatehouse-web"
# gunicorn's runtime control socket ($HOME/.gunicorn/gunicorn.ctl) is off: two servers on one machine
# (a smoke run beside a real one) would fight over the one path, and nothing here uses it.
control_socket_disable = True
