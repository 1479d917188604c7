"""The same Gatehouse under different servers: gunicorn sync and gthread, granian (WSGI) and uvicorn (ASGI).

    .venv/bin/python bench/servers.py [--duration 5] [--rounds 3] [--connections 16] [--workers 2]

Starts every server at once on its own port, all with `config.settings.production` on the same PostgreSQL
database and Redis (bench/harness.py's environment; the first one through `start_server`, which migrates),
each with the same number of worker processes and its access log on. Every round loads each (server,
scenario) pair once with wrk: the public hello, the hello behind a JWT and behind an API key, and
`GET /auth/me`. Prints medians of req/s, each protected figure's ratio to the server's own public one, and
the RSS of every worker after the run. granian and uvicorn are installed by this script (pinned below)
into the project's virtualenv if missing: they are candidates, not dependencies.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import time

from harness import (
    BENCH_VAR,
    ROOT,
    VENV_BIN,
    format_table,
    http_json,
    rss_mb,
    run_wrk,
    start_server,
    stop_process,
    worker_pids,
)

CANDIDATES = {"granian": "granian==2.8.9", "uvicorn": "uvicorn==0.54.0"}
USERNAME = "bench"
GTHREAD = ("-k", "gthread", "--threads", "4")
PASSWORD = "bench-account-not-a-secret-4f7c"  # a throwaway account in the throwaway benchmark database


def _ensure_installed() -> None:
    missing = [pin for name, pin in CANDIDATES.items() if not (VENV_BIN / name).exists()]
    if missing:
        subprocess.run([str(VENV_BIN / "pip"), "install", "--quiet", *missing], check=True)  # noqa: S603


def commands(port: int, workers: int) -> dict[str, tuple[int, list[str]]]:
    """Each candidate's port and command line, on consecutive ports after `port` (start_server's gunicorn sync)."""
    gunicorn = [str(VENV_BIN / "gunicorn"), "-c", "config/gunicorn.py", "-w", str(workers), "--no-control-socket"]
    granian = [str(VENV_BIN / "granian"), "--interface", "wsgi", "--workers", str(workers), "--no-ws"]
    granian += ["--access-log", "--host", "127.0.0.1"]
    uvicorn = [str(VENV_BIN / "uvicorn"), "--workers", str(workers), "--host", "127.0.0.1"]
    return {
        "gunicorn gthread x4": (
            port + 1,
            [*gunicorn, "-k", "gthread", "--threads", "4", "-b", f"127.0.0.1:{port + 1}"],
        ),
        "granian wsgi": (port + 2, [*granian, "--port", str(port + 2)]),
        "granian wsgi, 4 threads": (port + 3, [*granian, "--blocking-threads", "4", "--port", str(port + 3)]),
        "uvicorn asgi": (port + 4, [*uvicorn, "--port", str(port + 4), "config.asgi:application"]),
    }


def _wait_ready(base_url: str, process: subprocess.Popen, name: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with {process.returncode} (log in {BENCH_VAR})")
        with contextlib.suppress(OSError):
            if http_json("GET", base_url + "/health/live", timeout=2)[0] == 200:
                return
        time.sleep(0.3)
    raise SystemExit(f"{name} did not answer /health/live within 60 s")


def credentials(base_url: str) -> dict[str, dict[str, str]]:
    status, body = http_json("POST", base_url + "/api/v1/auth/login", body={"username": USERNAME, "password": PASSWORD})
    if status != 200:
        raise SystemExit(f"login: {status} {body}")
    jwt = {"Authorization": f"Bearer {body['access_token']}"}
    status, body = http_json(
        "POST", base_url + "/api/v1/auth/api-keys", body={"name": f"servers-{time.time():.0f}"}, headers=jwt
    )
    if status != 201:
        raise SystemExit(f"create API key: {status} {body}")
    return {"jwt": jwt, "key": {"X-API-Key": body["api_key"]}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds of load per run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the table shows medians")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8830)
    options = parser.parse_args()
    _ensure_installed()
    overrides = {"GUNICORN_MAX_REQUESTS": "0", "API_KEYS_MAX_ACTIVE_PER_USER": "0"}
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(start_server(overrides, port=options.port, workers=options.workers))
        first.manage("create_user", "--username", USERNAME, "--password-stdin", input=PASSWORD, check=False)
        servers = {"gunicorn sync": (first.base_url, first.process)}
        for name, (port, command) in commands(options.port, options.workers).items():
            if "uvicorn" not in name:
                command = [*command, "config.wsgi:application"]
            log = open(BENCH_VAR / f"servers-{name.replace(' ', '-').replace(',', '')}.log", "w")  # noqa: SIM115
            stack.callback(log.close)
            process = subprocess.Popen(command, cwd=ROOT, env=first.env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
            stack.callback(stop_process, process)
            base_url = f"http://127.0.0.1:{port}"
            _wait_ready(base_url, process, name)
            servers[name] = (base_url, process)
        auth = credentials(first.base_url)
        scenarios = {
            "public": ({}, "/api/v1/hello"),
            "JWT": (auth["jwt"], "/api/v1/hello/protected"),
            "API key": (auth["key"], "/api/v1/hello/protected"),
            "JWT me": (auth["jwt"], "/api/v1/auth/me"),
        }
        rps = {(name, scenario): [] for name in servers for scenario in scenarios}
        for round_index in range(options.rounds):
            names = list(servers)
            names = names[round_index % len(names) :] + names[: round_index % len(names)]
            for name in names:
                for scenario, (headers, path) in scenarios.items():
                    result = run_wrk(
                        servers[name][0] + path,
                        headers=headers,
                        duration=options.duration,
                        connections=options.connections,
                    )
                    rps[(name, scenario)].append(result["rps"])
        rows = []
        for name, (_, process) in servers.items():
            median = {scenario: statistics.median(rps[(name, scenario)]) for scenario in scenarios}
            rss = ", ".join(f"{rss_mb(pid):.0f}" for pid in worker_pids(process.pid) if rss_mb(pid))
            rows.append(
                [name, *(f"{median[s]:.0f}" for s in scenarios)]
                + [f"{median['JWT'] / median['public']:.2f}", f"{median['API key'] / median['public']:.2f}", rss]
            )
    headers = ["server", *scenarios, "JWT / public", "key / public", "worker RSS (MB)"]
    print(format_table(headers, rows))
    print(
        f"\nreq/s, medians of {options.rounds} interleaved rounds of {options.duration:.0f} s, "
        f"wrk {options.connections} connections, {options.workers} workers each"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
