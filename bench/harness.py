"""Benchmark harness shared by the bench/ scripts: run Gatehouse the production way and load it with wrk.

    from harness import start_server, run_wrk

    with start_server({"SOME_SETTING": "value"}) as server:
        status, body = server.request("POST", "/api/v1/auth/login", {"username": "u", "password": "p"})
        result = run_wrk(server.url("/api/v1/hello"), headers={"Accept": "application/json"})
        print(result["rps"], result["p50_ms"], result["p99_ms"])

`start_server` creates the PostgreSQL database if it is missing, migrates, collects static
files, starts gunicorn with the project's production config (`config/gunicorn.py`) and
`config.settings.production` (DEBUG off), and waits until `/health/live` answers; leaving
the block stops gunicorn. `run_wrk` runs wrk with `--latency` and parses requests/s and the
50th/99th latency percentiles; `Server.cpu_seconds()` reads the CPU time of the workers and
of the database's PostgreSQL backends, for CPU per request. Only the standard library
plus psycopg (a dependency of the project), so run the scripts with the project's
virtualenv: `.venv/bin/python bench/<script>.py`.

Environment variables (all optional):

    BENCH_DATABASE_URL   postgres://postgres@127.0.0.1:5432/gatehouse_bench
    BENCH_REDIS_URL      redis://127.0.0.1:6379/15 (cache, throttles, session cache, broker)
    BENCH_PORT           8765
    BENCH_WORKERS        gunicorn workers (default: config/gunicorn.py's, 2 x CPUs + 1)
    BENCH_WORKER_CLASS   gunicorn worker class (default: the config's, sync)
    BENCH_THREADS        threads per worker (gthread)
    BENCH_VENV           virtualenv the servers run from (default: .venv)
    WRK                  path of the wrk binary (default: wrk on PATH)

`start_celery(server.env)` adds a Celery worker and beat on the same settings, database and
broker, as docker/compose.yml runs them; `Celery.kill_worker()` SIGKILLs the worker's whole
process group (its pool and Chromium) and `start_worker()` brings it back.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The virtualenv the servers run from: the development one by default, or BENCH_VENV, e.g. a production
# install (requirements/prod.txt alone), to measure what a deployment runs (worker RSS differs).
VENV_BIN = Path(os.environ.get("BENCH_VENV") or ROOT / ".venv") / "bin"
BENCH_VAR = ROOT / "var" / "bench"

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/gatehouse_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
DEFAULT_PORT = 8765


def _python() -> str:
    venv_python = VENV_BIN / "python"
    return str(venv_python) if venv_python.exists() else sys.executable


def _gunicorn() -> str:
    venv_gunicorn = VENV_BIN / "gunicorn"
    found = str(venv_gunicorn) if venv_gunicorn.exists() else shutil.which("gunicorn")
    if not found:
        raise SystemExit("gunicorn is not installed: pip install -r requirements/prod.txt")
    return found


def _wrk() -> str:
    found = shutil.which(os.environ.get("WRK", "wrk"))
    if not found:
        raise SystemExit("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
    return found


# DATABASE
# ------------------------------------------------------------------------------


def ensure_database(database_url: str) -> None:
    """Create the PostgreSQL database named in the URL if it does not exist yet."""
    import psycopg  # the project's own driver; imported here so the parsers below need nothing

    parsed = urllib.parse.urlsplit(database_url)
    if not parsed.scheme.startswith("postgres"):
        raise SystemExit(f"the benchmark runs on PostgreSQL; got {database_url!r}")
    name = parsed.path.lstrip("/")
    admin_url = urllib.parse.urlunsplit(parsed._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{name}"')


# SERVER
# ------------------------------------------------------------------------------


@dataclass
class Server:
    """A running gunicorn serving Gatehouse; `request` and `manage` talk to it and its settings."""

    base_url: str
    env: dict[str, str]
    process: subprocess.Popen
    log_path: Path
    description: str = ""
    extra: dict = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base_url + path

    def request(
        self,
        method: str,
        path: str,
        body: Mapping | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10,
    ) -> tuple[int, object]:
        """One JSON request; returns (status, decoded body or raw text). Never raises on an HTTP error status."""
        return http_json(method, self.url(path), body=body, headers=headers, timeout=timeout)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by the gunicorn workers and by this database's PostgreSQL backends.

        Unlike requests/s, CPU per request hardly moves when other work shares the machine:
        take it before and after a load run and divide by the requests served.
        """
        return {
            "workers": process_cpu_seconds(_worker_pids(self.process.pid)),
            "postgres": process_cpu_seconds(database_backend_pids(self.env["DATABASE_URL"])),
        }

    def manage(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """Run `manage.py <args>` with the server's settings and environment (same database and Redis)."""
        return subprocess.run(  # noqa: S603 (our own manage.py)
            [_python(), str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=self.env,
            input=input,
            check=check,
            capture_output=True,
            text=True,
        )


def server_env(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a production-settings server on local services; `overrides` win."""
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DEBUG": "false",
        # A fresh secret per run: tokens are minted by this run anyway.
        "SECRET_KEY": "bench-" + secrets.token_urlsafe(48),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # wrk speaks plain HTTP to gunicorn directly; in production TLS ends at the proxy.
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "VAR_DIR": str(BENCH_VAR),
        "PYTHONUNBUFFERED": "1",
    }
    env.update(overrides or {})
    return env


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


GUNICORN_CONFIG = ROOT / "config" / "gunicorn.py"


@contextlib.contextmanager
def start_server(
    env_overrides: Mapping[str, str] | None = None,
    *,
    port: int | None = None,
    workers: int | None = None,
    worker_class: str | None = None,
    threads: int | None = None,
    migrate: bool = True,
    collectstatic: bool = True,
    ready_timeout: float = 60,
) -> Iterator[Server]:
    """Start gunicorn the production way on 127.0.0.1 and yield a `Server`; stop it on exit.

    Creates the database if needed and runs migrate (and collectstatic) first, as a deploy would,
    then starts gunicorn with the project's production config (config/gunicorn.py: its worker
    count, keep-alive, access log and worker recycling) and `config.settings.production`.
    `workers`, `worker_class` and `threads` (or BENCH_WORKERS, BENCH_WORKER_CLASS,
    BENCH_THREADS) override the config; gunicorn's own variables in `env_overrides`
    (e.g. GUNICORN_MAX_REQUESTS) work as they do in production.
    """
    env = server_env(env_overrides)
    port = port or int(os.environ.get("BENCH_PORT", DEFAULT_PORT))
    workers = workers or int(os.environ.get("BENCH_WORKERS", 0)) or None
    worker_class = worker_class or os.environ.get("BENCH_WORKER_CLASS") or None
    threads = threads or int(os.environ.get("BENCH_THREADS", 0)) or None
    if not _port_is_free(port):
        raise SystemExit(f"port {port} is in use: set BENCH_PORT to a free port")

    BENCH_VAR.mkdir(parents=True, exist_ok=True)
    ensure_database(env["DATABASE_URL"])
    steps = []
    if migrate:
        steps.append(["migrate", "--noinput", "-v", "0"])
    if collectstatic:
        steps.append(["collectstatic", "--noinput", "-v", "0"])
    for step in steps:
        done = subprocess.run(  # noqa: S603 (our own manage.py)
            [_python(), str(ROOT / "manage.py"), *step], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if done.returncode:
            raise SystemExit(f"manage.py {' '.join(step)} failed:\n{done.stdout}{done.stderr}")

    log_path = BENCH_VAR / f"gunicorn-{port}.log"
    command = [_gunicorn()]
    if GUNICORN_CONFIG.exists():
        command += ["--config", str(GUNICORN_CONFIG)]
    else:  # before config/gunicorn.py existed: gunicorn's defaults, without its access log
        command += ["--workers", str(os.cpu_count() or 1)]
    command += ["--bind", f"127.0.0.1:{port}", "--timeout", "30", "--graceful-timeout", "5"]
    if workers:
        command += ["--workers", str(workers)]
    if worker_class:
        command += ["--worker-class", worker_class]
    if threads:
        command += ["--threads", str(threads)]
    # gunicorn's control socket has one default path per user: two servers at once would clash.
    command += ["--no-control-socket", "config.wsgi:application"]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    server = Server(base_url=f"http://127.0.0.1:{port}", env=env, process=process, log_path=log_path)
    try:
        _wait_ready(server, ready_timeout)
        server.description = _describe(server, command)
        yield server
    finally:
        stop_process(process)


def _describe(server: Server, command: list[str]) -> str:
    """What is serving, e.g. "gunicorn -c config/gunicorn.py, 5 sync workers", once every worker has booted."""
    counts, deadline = [], time.monotonic() + 15
    while time.monotonic() < deadline and (len(counts) < 5 or len(set(counts[-5:])) > 1):
        counts.append(len(_worker_pids(server.process.pid)))
        time.sleep(0.2)
    config = "-c config/gunicorn.py" if GUNICORN_CONFIG.exists() else "(defaults)"
    kind = next((command[i + 1] for i, part in enumerate(command) if part == "--worker-class"), "sync")
    threads = next((command[i + 1] for i, part in enumerate(command) if part == "--threads"), None)
    return f"gunicorn {config}, {counts[-1] if counts else '?'} {kind} workers" + (
        f" x {threads} threads" if threads else ""
    )


def _worker_pids(master_pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    except OSError:
        return []
    return [int(pid) for pid in children]


def worker_pids(master_pid: int) -> list[int]:
    """PIDs of the direct children of a server's master process (gunicorn's or uvicorn's workers)."""
    return _worker_pids(master_pid)


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MB (VmRSS of /proc/<pid>/status); None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else None


def process_cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of the processes (Linux /proc); processes gone or unreadable count 0."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / ticks


def database_backend_pids(database_url: str) -> list[int]:
    """PIDs of the PostgreSQL server processes serving connections to this database (other than ours)."""
    import psycopg

    parsed = urllib.parse.urlsplit(database_url)
    url = urllib.parse.urlunsplit(parsed._replace(scheme="postgresql"))
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=2) as connection:
            rows = connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
    except psycopg.Error:
        return []
    return [row[0] for row in rows]


def _wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.process.returncode}:\n{_tail(server.log_path)}")
        with contextlib.suppress(OSError):
            status, _ = server.request("GET", "/health/live", timeout=2)
            if status == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"gunicorn did not answer /health/live within {timeout:.0f}s:\n{_tail(server.log_path)}")


def stop_process(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM (a master stops its workers), then SIGKILL after `timeout` s; nothing if it has exited."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # the gunicorn master stops its workers
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# CELERY
# ------------------------------------------------------------------------------


@dataclass
class Celery:
    """A Celery worker and beat started by `start_celery`, each the leader of its own process group."""

    env: dict[str, str]
    log_dir: Path
    name: str
    concurrency: int = 1
    worker: subprocess.Popen | None = None
    beat: subprocess.Popen | None = None

    @property
    def worker_log(self) -> Path:
        return self.log_dir / f"celery-worker-{self.name}.log"

    @property
    def beat_log(self) -> Path:
        return self.log_dir / f"celery-beat-{self.name}.log"

    def start_worker(self, ready_timeout: float = 90) -> subprocess.Popen:
        """Start the worker (the commands of docker/compose.yml) and wait for its " ready." line."""
        command = ["worker", "--loglevel", "INFO", "--concurrency", str(self.concurrency)]
        command += ["--hostname", f"{self.name}-{os.getpid()}@%h"]
        self.worker = self._start(command, self.worker_log, " ready.", ready_timeout)
        return self.worker

    def start_beat(self, ready_timeout: float = 60) -> subprocess.Popen:
        schedule = self.log_dir / f"celerybeat-schedule-{self.name}"
        command = ["beat", "--loglevel", "INFO", "--schedule", str(schedule)]
        self.beat = self._start(command, self.beat_log, "beat: Starting", ready_timeout)
        return self.beat

    def kill_worker(self) -> None:
        """SIGKILL the worker's process group (main process, pool, Chromium) and reap it."""
        if self.worker is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait()

    def pids(self) -> dict[str, list[int]]:
        """{"worker": [main, pool processes...], "beat": [pid]} of what is running (Chromium left out)."""
        found = {}
        if self.worker is not None and self.worker.poll() is None:
            found["worker"] = [self.worker.pid, *_worker_pids(self.worker.pid)]
        if self.beat is not None and self.beat.poll() is None:
            found["beat"] = [self.beat.pid]
        return found

    def stop(self) -> None:
        """SIGTERM (a warm shutdown finishes the running job), then SIGKILL whatever is left of each group."""
        for process in (self.worker, self.beat):
            if process is not None:
                stop_process(process, timeout=30)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)

    def _start(self, args: list[str], log_path: Path, ready: str, timeout: float) -> subprocess.Popen:
        offset = log_path.stat().st_size if log_path.exists() else 0  # a restart appends to the same log
        with open(log_path, "ab") as log:
            process = subprocess.Popen(  # noqa: S603 (our own celery, fixed arguments)
                [_python(), "-m", "celery", "-A", "config", *args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # so that a kill reaches its pool and Chromium
            )
        deadline = time.monotonic() + timeout
        while ready not in log_path.read_bytes()[offset:].decode(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                stop_process(process)
                raise SystemExit(f"celery {args[0]} did not start:\n{_tail(log_path)}")
            time.sleep(0.2)
        return process


@contextlib.contextmanager
def start_celery(
    env: Mapping[str, str], *, name: str = "bench", concurrency: int = 1, beat: bool = True
) -> Iterator[Celery]:
    """Start a Celery worker (prefork, `concurrency` processes) and beat on `env` (a Server's env); stop on exit."""
    BENCH_VAR.mkdir(parents=True, exist_ok=True)
    celery = Celery(env=dict(env), log_dir=BENCH_VAR, name=name, concurrency=concurrency)
    try:
        celery.start_worker()
        if beat:
            celery.start_beat()
        yield celery
    finally:
        celery.stop()


# HTTP
# ------------------------------------------------------------------------------


def http_json(
    method: str,
    url: str,
    *,
    body: Mapping | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, object]:
    """Send one request with a JSON body (if any); returns (status, JSON body or text)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (the bench server's http URL)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    text = raw.decode(errors="replace")
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


# WRK
# ------------------------------------------------------------------------------

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"unrecognised wrk duration {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> dict:
    """Parse `wrk --latency` output into {rps, p50_ms, p99_ms, requests, non_2xx, socket_errors}."""
    percentiles = dict(re.findall(r"^\s+(\d+(?:\.\d+)?)%\s+(\S+)\s*$", output, re.MULTILINE))
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s+(\d+) requests in", output, re.MULTILINE)
    if not (rps and total and "50" in percentiles and "99" in percentiles):
        raise ValueError(f"could not parse wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "rps": float(rps.group(1)),
        "p50_ms": _duration_ms(percentiles["50"]),
        "p99_ms": _duration_ms(percentiles["99"]),
        "requests": int(total.group(1)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(n) for n in socket.groups()) if socket else 0,
    }


def run_wrk(
    url: str,
    headers: Mapping[str, str] | None = None,
    duration: float = 10,
    connections: int = 8,
    *,
    threads: int = 1,
    method: str = "GET",
    body: str | bytes | None = None,
    timeout: str = "10s",
    allow_errors: bool = False,
) -> dict:
    """Load `url` with wrk and return {rps, p50_ms, p99_ms, requests, non_2xx, socket_errors, output}.

    Any non-2xx/3xx response or socket error raises (a benchmark of 401s measures nothing),
    unless allow_errors is set. `method`/`body` are sent through a generated wrk Lua script.
    """
    command = [
        _wrk(),
        "--latency",
        "--threads",
        str(max(1, min(threads, connections))),
        "--connections",
        str(connections),
        "--duration",
        f"{max(1, round(duration))}s",
        "--timeout",
        timeout,
    ]
    for name, value in (headers or {}).items():
        command += ["--header", f"{name}: {value}"]
    script = None
    if method != "GET" or body is not None:
        if isinstance(body, bytes):
            body = body.decode()
        lua = f"wrk.method = {json.dumps(method)}\n"
        if body is not None:
            lua += f"wrk.body = {json.dumps(body)}\n"  # a JSON string literal is a valid Lua string here
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115
        script.write(lua)
        script.close()
        command += ["--script", script.name]
    try:
        done = subprocess.run([*command, url], capture_output=True, text=True, check=False)  # noqa: S603
    finally:
        if script is not None:
            os.unlink(script.name)
    if done.returncode:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    result = parse_wrk(done.stdout)
    result["output"] = done.stdout
    if not allow_errors and (result["non_2xx"] or result["socket_errors"] or not result["requests"]):
        raise RuntimeError(f"{url}: {result['non_2xx']} non-2xx responses, {result['socket_errors']} socket errors")
    return result


def run_rounds(
    scenarios: Mapping[str, Callable[[], dict]],
    rounds: int = 3,
    pause: float = 1.0,
    *,
    order: Callable[[int], Sequence[str]] | None = None,
) -> dict[str, dict]:
    """Run every scenario `rounds` times, interleaved (A B C A B C ...) so that background load on a shared
    machine hits all of them alike, and return each scenario's median figures plus the per-round rps.

    `order(round_index)`, if given, names the scenarios in the order that round runs them (each once),
    e.g. a rotation so that no scenario always runs first, right after a pause, or last.
    """
    runs: dict[str, list[dict]] = {name: [] for name in scenarios}
    for round_index in range(rounds):
        names = list(order(round_index)) if order else list(scenarios)
        if sorted(names) != sorted(scenarios):
            raise ValueError(f"round {round_index}: order must name every scenario once, got {names}")
        for name in names:
            runs[name].append(scenarios[name]())
            time.sleep(pause)
    summary = {}
    for name, results in runs.items():
        summary[name] = {
            "rps": statistics.median(r["rps"] for r in results),
            "p50_ms": statistics.median(r["p50_ms"] for r in results),
            "p99_ms": statistics.median(r["p99_ms"] for r in results),
            "rounds_rps": [r["rps"] for r in results],
            "runs": results,
        }
    return summary


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (readable in a terminal, pasteable into docs)."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        return (
            "| "
            + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
            + " |"
        )

    separator = "| " + " | ".join("-" * w if i == 0 else "-" * (w - 1) + ":" for i, w in enumerate(widths)) + " |"
    return "\n".join([line(cells[0]), separator, *(line(row) for row in cells[1:])])
