"""The deployment files agree with the code: docker/compose.yml, docker/Dockerfile, the entrypoint,
the healthcheck and config/gunicorn.py.

No Docker engine runs here (nor in CI), so the image is never built by the tests: instead every
command a container would run is resolved against the project's real entry points (management
commands, the Celery app and its CLI options, the WSGI module, the gunicorn config file), every
file the Dockerfile copies or executes must exist, and the scripts the containers run (entrypoint,
healthcheck, gunicorn with its config) are run here for real. `manage.py check --deploy` is
covered by test_settings.py.
"""

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from celery.app.utils import find_app
from celery.bin.celery import celery as celery_cli
from django.conf import settings
from django.core.management import get_commands
from django.urls import resolve

from config import schema, views
from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
APP_SERVICES = ("migrate", "web", "worker", "mailer", "beat")
ENV_REFERENCE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?[-?+][^}]*)?\}")


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((DOCKER / "compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


def env_example_names() -> set[str]:
    """Every variable .env.example documents, set or commented out (`# NAME=...`)."""
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.MULTILINE))


def project_python_sources() -> str:
    skip = {".venv", "var", ".git", "node_modules", "tests"}
    parts = []
    for path in ROOT.rglob("*.py"):
        if not skip.intersection(path.relative_to(ROOT).parts):
            parts.append(path.read_text())
    return "\n".join(parts)


def duration_seconds(value: str) -> float:
    """Compose's duration syntax: 1m30s, 330s, 40s, 1h."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"bad duration {value!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_environment(tmp_path, **extra) -> dict[str, str]:
    drop = {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"}
    environment = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("GUNICORN_")}
    # The container's `python` is the project's interpreter: so is this one's, first on PATH.
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"
    environment.update(VAR_DIR=str(tmp_path / "var"), **extra)
    return environment


# COMPOSE: SERVICES AND THEIR COMMANDS --------------------------------------------------------------
def test_compose_has_the_production_topology(services, compose):
    assert set(services) == {"web", "worker", "mailer", "beat", "postgres", "redis", "migrate"}
    assert set(compose["volumes"]) >= {"postgres-data", "redis-data", "media", "keys", "beat"}
    # The web seals provider keys with the RSA keyring and the worker opens them: one file, on a shared volume.
    for name in ("web", "worker"):
        keyring = services[name]["environment"]["RSA_PRIVATE_KEY_FILE"]
        assert keyring == "/app/var/keys/rsa_private_key.pem" and "keys:/app/var/keys" in services[name]["volumes"]
    for name in APP_SERVICES:
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}, name
        assert service["init"] is True, f"{name}: needs an init to reap children and forward SIGTERM"
        environment = service["environment"]
        assert environment["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
        assert (
            environment["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in environment["DATABASE_URL"]
        )
        assert environment["REDIS_URL"].startswith("redis://redis:6379/")
        assert environment["CELERY_BROKER_URL"].startswith("redis://redis:6379/")
        # The cache and the broker must not share a Redis database (a cache flush would drop the queue).
        assert environment["REDIS_URL"] != environment["CELERY_BROKER_URL"]
    for name in ("postgres", "redis"):
        assert any(v.startswith(f"{name}-data:") for v in services[name]["volumes"]), name


def test_every_app_command_is_a_real_entry_point(services):
    checked = set()
    for name in APP_SERVICES:
        command = services[name]["command"]
        assert isinstance(command, list), f"{name}: exec form, so the process gets SIGTERM itself"
        program, *args = command
        if program == "python":
            assert args[0] == "manage.py" and (ROOT / "manage.py").exists()
            assert args[1] in get_commands(), f"{name}: no management command {args[1]!r}"
        elif program == "gunicorn":
            assert args[0] == "-c" and (ROOT / args[1]).is_file(), f"{name}: gunicorn config {args[1]} missing"
            assert args[2] == "config.wsgi" == settings.WSGI_APPLICATION.rsplit(".", 1)[0]
            from gunicorn.util import import_app

            assert callable(import_app(args[2])), f"{name}: {args[2]} has no WSGI application"
        elif program == "celery":
            assert args[:2] == ["-A", "config"]
            assert find_app("config") is celery_app, "celery -A config must find config.celery:app"
            subcommand = args[2]
            assert subcommand in celery_cli.commands, f"{name}: celery has no {subcommand!r} command"
            known = {opt for param in celery_cli.commands[subcommand].params for opt in param.opts}
            for option in (arg for arg in args[3:] if arg.startswith("-")):
                assert option in known, f"{name}: celery {subcommand} has no option {option}"
        else:
            pytest.fail(f"{name}: unexpected program {program!r}")
        checked.add(program)
    assert checked == {"python", "gunicorn", "celery"}
    assert services["migrate"]["command"][:3] == ["python", "manage.py", "migrate"]
    assert services["worker"]["command"][3] == "worker" and services["beat"]["command"][3] == "beat"


def test_the_worker_runs_every_job_that_beat_schedules():
    celery_app.loader.import_default_modules()
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in celery_app.tasks, f"beat schedules {entry['task']}, which no worker knows"


def test_migrations_run_once_before_web_worker_and_beat(services):
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends["postgres"]["condition"] == depends["redis"]["condition"] == "service_healthy", name
    assert set(services["migrate"]["depends_on"]) == {"postgres", "redis"}


def test_beat_keeps_its_schedule_in_a_volume(services):
    command = services["beat"]["command"]
    schedule = Path(command[command.index("--schedule") + 1])
    assert any(volume.split(":")[1] == str(schedule.parent) for volume in services["beat"]["volumes"])


def test_healthchecks_use_liveness_and_readiness_endpoints(services):
    assert resolve("/health").func.view_class is views.HealthView
    assert resolve("/health/live").func.view_class is views.LivenessView
    web = services["web"]["healthcheck"]["test"]
    assert web[:3] == ["CMD", "python", "/app/docker/healthcheck.py"] and web[3] == "/health"
    image_check = [rest for keyword, rest in dockerfile_instructions() if keyword == "HEALTHCHECK"]
    assert len(image_check) == 1
    assert json_or_shell(image_check[0].split(" CMD ", 1)[1]) == [
        "python",
        "/app/docker/healthcheck.py",
        "/health/live",
    ]
    # The image's web healthcheck means nothing in a worker or beat container: replaced or disabled.
    assert "celery -A config inspect ping" in " ".join(services["worker"]["healthcheck"]["test"])
    assert services["beat"]["healthcheck"] == {"disable": True}
    assert services["migrate"]["healthcheck"] == {"disable": True}
    assert services["postgres"]["healthcheck"]["test"][1].startswith("pg_isready")
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_stop_grace_periods_outlast_the_graceful_shutdowns(services, tmp_path):
    gunicorn = load_gunicorn_settings(tmp_path)
    assert duration_seconds(services["web"]["stop_grace_period"]) > gunicorn["graceful_timeout"]
    # A warm shutdown lets the running browser job end: it stops itself at the soft limit, Celery
    # kills it at the hard one; Docker must not SIGKILL the worker before either.
    worker_grace = duration_seconds(services["worker"]["stop_grace_period"])
    assert worker_grace > settings.CELERY_TASK_SOFT_TIME_LIMIT
    assert worker_grace > settings.CELERY_TASK_TIME_LIMIT


# COMPOSE: ENVIRONMENT --------------------------------------------------------------------------------
def test_every_variable_compose_uses_is_documented_in_env_example(services):
    text = "\n".join(re.sub(r"(^|\s)#.*", "", line) for line in (DOCKER / "compose.yml").read_text().splitlines())
    documented = env_example_names()
    interpolated = set(ENV_REFERENCE.findall(text))
    assert interpolated, "compose.yml should offer ${VAR:-default} overrides"
    assert interpolated <= documented, f"not in .env.example: {sorted(interpolated - documented)}"
    defaults = dict(
        line.split("=", 1)
        for line in (DOCKER / "defaults.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    passed = set(defaults)
    for name in APP_SERVICES:
        passed |= set(services[name]["environment"])
    assert passed <= documented, f"not in .env.example: {sorted(passed - documented)}"
    # ... and each one reaches code that reads it (a misspelt name would be silently ignored).
    sources = project_python_sources()
    unread = sorted(name for name in passed if f'"{name}"' not in sources)
    assert not unread, f"set for the containers but read by no code: {unread}"


def test_env_files_are_defaults_then_the_project_env(services):
    for name in APP_SERVICES:
        env_files = services[name]["env_file"]
        assert env_files[0] == {"path": "defaults.env"} and (DOCKER / "defaults.env").is_file()
        assert env_files[1] == {"path": "../.env", "required": False}, "../.env wins over the defaults"
    assert "SECRET_KEY" not in (DOCKER / "defaults.env").read_text(), "never ship a default secret"
    for name in APP_SERVICES:
        if name == "worker":
            # The worker's own key, never the web's (test_runner_sandbox.py): required, no default.
            assert services[name]["environment"]["SECRET_KEY"].startswith("${WORKER_SECRET_KEY:?")
        else:
            assert "SECRET_KEY" not in services[name]["environment"]


# DOCKERFILE ----------------------------------------------------------------------------------------
def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DOCKER / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def json_or_shell(value: str) -> list[str]:
    return yaml.safe_load(value) if value.startswith("[") else shlex.split(value)


def test_dockerfile_copies_what_exists_and_every_local_app():
    instructions = dockerfile_instructions()
    copied = []
    for keyword, rest in instructions:
        if keyword == "COPY":
            *sources, _destination = [part for part in rest.split() if not part.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                copied.append(source.rstrip("/"))
    local_apps = [app for app in settings.INSTALLED_APPS if (ROOT / app / "apps.py").exists()]
    assert local_apps, "expected the project's own apps in INSTALLED_APPS"
    for package in ["config", *local_apps]:
        assert package in copied, f"the image lacks {package}/"
    assert "manage.py" in copied
    # Its bytecode is compiled at build time (processes do not write it: PYTHONDONTWRITEBYTECODE).
    (compiled,) = [rest.split() for keyword, rest in instructions if keyword == "RUN" and "compileall" in rest]
    for package in ["config", *local_apps]:
        assert package in compiled, f"the image does not compile {package}/"
    ignored = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    for needed in ["manage.py", "config", *local_apps, "requirements", "docker"]:
        assert needed not in ignored, f"{needed} is excluded from the build context"
    assert ".env" in ignored and ".venv" in ignored


def test_dockerfile_installs_pinned_production_requirements_as_a_non_root_user():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "pip install -r requirements/prod.txt" in runs
    assert re.search(r"apt-get install .*\bchromium\b", runs)
    assert "collectstatic --noinput" in runs and "SECRET_KEY=" in runs
    for path in ("requirements/prod.txt", "requirements/base.txt"):
        for line in (ROOT / path).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r"):
                assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.]+", line), f"{path}: {line!r} is not pinned"
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1] not in {"root", "0"}
    env = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    assert "DJANGO_SETTINGS_MODULE=config.settings.production" in env


def test_dockerfile_entrypoint_and_cmd_exist_and_match_compose(services):
    instructions = dict(dockerfile_instructions())
    entrypoint = json_or_shell(instructions["ENTRYPOINT"])
    assert entrypoint == ["/app/docker/entrypoint.sh"]
    cmd = json_or_shell(instructions["CMD"])
    assert cmd == services["web"]["command"], "the image's default command is the web service's"
    for script in ("entrypoint.sh", "healthcheck.py"):
        path = DOCKER / script
        assert path.is_file() and os.access(path, os.X_OK), f"docker/{script} must exist and be executable"
    assert (ROOT / cmd[2]).is_file()


# THE SCRIPTS THE CONTAINERS RUN, RUN HERE ------------------------------------------------------------
def test_entrypoint_runs_the_command_once_the_database_answers(tmp_path):
    env = clean_environment(tmp_path, DJANGO_SETTINGS_MODULE="config.settings.base")
    result = subprocess.run(
        ["sh", str(DOCKER / "entrypoint.sh"), sys.executable, "-c", "print('command ran')"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "command ran"


def test_entrypoint_gives_up_when_the_database_never_answers(tmp_path):
    env = clean_environment(
        tmp_path,
        DJANGO_SETTINGS_MODULE="config.settings.base",
        DB_WAIT_SECONDS="2",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/nothing",
    )
    started = time.monotonic()
    result = subprocess.run(
        ["sh", str(DOCKER / "entrypoint.sh"), sys.executable, "-c", "print('command ran')"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "command ran" not in result.stdout
    assert "waiting for the database" in result.stderr and "giving up" in result.stderr
    assert time.monotonic() - started < 30


def load_gunicorn_settings(tmp_path, **env) -> dict:
    """config/gunicorn.py as gunicorn loads it, each value validated by gunicorn's own Config."""
    code = (
        "import json, os, sys\n"
        "from gunicorn.app.base import Application\n"
        "from gunicorn.config import Config\n"
        "values = Application.get_config_from_filename(None, 'config/gunicorn.py')\n"
        "cfg = Config()\n"
        "for key, value in values.items():\n"
        "    if key in cfg.settings: cfg.set(key, value)\n"
        "out = {k: cfg.settings[k].get() for k in ('bind', 'workers', 'timeout', 'graceful_timeout', 'accesslog',"
        " 'errorlog', 'keepalive', 'control_socket_disable', 'limit_request_line', 'limit_request_field_size',"
        " 'limit_request_fields')}\n"
        "out['logger_class'] = cfg.logger_class.__module__ + '.' + cfg.logger_class.__name__\n"
        "out['DJANGO_SETTINGS_MODULE'] = os.environ['DJANGO_SETTINGS_MODULE']\n"
        "out['cpus'] = len(os.sched_getaffinity(0))\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean_environment(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    import json

    return json.loads(result.stdout)


def test_gunicorn_config_workers_from_cpus_timeouts_and_json_logs(tmp_path):
    pytest.importorskip("gunicorn")
    loaded = load_gunicorn_settings(tmp_path)
    assert loaded["workers"] == 2 * loaded["cpus"] + 1
    assert loaded["timeout"] == 30 and loaded["graceful_timeout"] == 30 and loaded["keepalive"] == 5
    assert loaded["bind"] == ["0.0.0.0:8000"]
    assert loaded["accesslog"] == "-" and loaded["errorlog"] == "-"
    assert loaded["logger_class"] == "config.logging.GunicornJSONLogger"
    assert loaded["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
    assert loaded["control_socket_disable"] is True
    # The limits docs/openapi.yaml states with its 414 and 431 (config/schema.py).
    limits = (loaded["limit_request_line"], loaded["limit_request_field_size"], loaded["limit_request_fields"])
    assert limits == (schema.REQUEST_LINE_LIMIT, schema.HEADER_FIELD_SIZE_LIMIT, schema.HEADER_FIELDS_LIMIT)
    tuned = load_gunicorn_settings(
        tmp_path, WEB_CONCURRENCY="5", GUNICORN_TIMEOUT="60", PORT="9000", DJANGO_SETTINGS_MODULE="config.settings.base"
    )
    assert (tuned["workers"], tuned["timeout"], tuned["bind"]) == (5, 60, ["0.0.0.0:9000"])
    assert tuned["DJANGO_SETTINGS_MODULE"] == "config.settings.base", "an explicit settings module wins"


def test_gunicorn_serves_production_with_json_access_log_healthcheck_and_graceful_stop(tmp_path):
    """gunicorn -c config/gunicorn.py config.wsgi as the web container runs it (on SQLite and the
    local cache here): the healthcheck script passes with a non-local ALLOWED_HOSTS and the HTTPS
    redirect on, the access log is JSON with the request id and no query string, SIGTERM is graceful."""
    pytest.importorskip("gunicorn")
    import json

    port = free_port()
    env = clean_environment(
        tmp_path,
        SECRET_KEY="test-" + "x" * 50,
        ALLOWED_HOSTS="api.example.com",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="1",
        GUNICORN_GRACEFUL_TIMEOUT="10",
    )
    log_path = tmp_path / "web.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        probe_env = {**env, "PORT": str(port)}

        def probe(path):
            return subprocess.run(
                [sys.executable, str(DOCKER / "healthcheck.py"), path],
                env=probe_env,
                capture_output=True,
                text=True,
                timeout=30,
            )

        deadline = time.monotonic() + 30
        while probe("/health/live").returncode != 0:
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        readiness = probe("/health")
        assert readiness.returncode == 0, readiness.stderr

        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/health/live?token=sk_query_secret_123456",
            headers={
                "Host": "api.example.com",
                "X-Request-ID": "probe-request-0001",
                "Authorization": "Bearer header.secret.value",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - a local http URL
            assert response.status == 200
            assert response.headers["X-Request-ID"] == "probe-request-0001"
        # Any other path is redirected to HTTPS (health is exempt), as production requires.
        other = urllib.request.Request(f"http://127.0.0.1:{port}/api", headers={"Host": "api.example.com"})
        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as redirect:
            opener.open(other, timeout=10)
        assert redirect.value.code == 301 and redirect.value.headers["Location"].startswith("https://")
        # Over the request line limit: gunicorn's own 414, the HTML page docs/openapi.yaml declares.
        too_long = urllib.request.Request(
            f"http://127.0.0.1:{port}/health/live?q={'x' * schema.REQUEST_LINE_LIMIT}",
            headers={"Host": "api.example.com"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(too_long, timeout=10)
        assert refused.value.code == 414 and refused.value.headers["Content-Type"] == "text/html"
        assert probe_against_closed_port(env).returncode == 1
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            returncode = server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            raise
    assert returncode == 0, "gunicorn must stop cleanly on SIGTERM"
    lines = [line for line in log_path.read_text().splitlines() if line.startswith("{")]
    entries = [json.loads(line) for line in lines]
    access = [e for e in entries if e["logger"] == "gunicorn.access" and e.get("request_id") == "probe-request-0001"]
    assert len(access) == 1, lines
    assert access[0]["path"] == "/health/live" and access[0]["status"] == 200 and access[0]["method"] == "GET"
    text = log_path.read_text()
    assert "sk_query_secret" not in text and "header.secret.value" not in text and "token=" not in text
    assert any(e["message"] == "Handling signal: term" for e in entries)
    assert not [e for e in entries if e["level"] in {"ERROR", "CRITICAL"}]


def probe_against_closed_port(env):
    return subprocess.run(
        [sys.executable, str(DOCKER / "healthcheck.py"), "/health/live"],
        env={**env, "PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=30,
    )


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_smoke_script_fails_clearly_when_a_service_is_missing(tmp_path):
    """The smoke names the step that failed and exits non-zero: here PostgreSQL is not reachable."""
    smoke = ROOT / "scripts" / "smoke"
    assert os.access(smoke, os.X_OK)
    env = clean_environment(tmp_path, SMOKE_DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/gatehouse_smoke")
    result = subprocess.run([sys.executable, str(smoke)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "SMOKE FAILED at step 'fresh database and Redis'" in result.stderr
    assert "SMOKE PASSED" not in result.stdout


def test_account_mails_go_to_a_worker_that_holds_the_web_secret(services):
    """Reset and verification tokens are made with SECRET_KEY: the mailer (web settings) sends the mails,
    never the browser worker, which has a key of its own and renders untrusted pages."""
    from config.celery import app

    assert app.amqp.router.route({}, "accounts.send_account_mail")["queue"].name == "mail"
    assert app.amqp.router.route({}, "tasks.run_task")["queue"].name == "celery"
    worker, mailer = services["worker"], services["mailer"]
    assert worker["command"][worker["command"].index("-Q") + 1] == "celery"
    assert mailer["command"][mailer["command"].index("-Q") + 1] == "mail"
    assert "SECRET_KEY" in worker["environment"] and "SECRET_KEY" not in mailer["environment"]
