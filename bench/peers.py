"""Gatehouse side by side with its peers: stock DRF + simplejwt + drf-api-key, and fastapi-users.

    .venv/bin/python bench/peers.py [--duration 10] [--rounds 3] [--connections 16] [--workers 2] [--check]

Starts, at the same time and on the same PostgreSQL server, each with the same number of workers:

- Gatehouse the production way (bench/harness.py's start_server: gunicorn with config/gunicorn.py,
  config.settings.production);
- the stock DRF peer (bench/peers/drf/) under gunicorn sync, twice: Django's default
  CONN_MAX_AGE=0 (a database connection per request) and CONN_MAX_AGE=60;
- the fastapi-users peer (bench/peers/fastapi_users/) under uvicorn.

The peers are installed from their pinned requirements.txt into their own virtualenvs under
var/bench/ on the first run (pip, from PyPI) and reused afterwards. Every round loads each
(scenario, server) pair once with wrk, in an order that rotates from round to round; the table
shows medians. Any non-2xx response in a run aborts the benchmark. Then, while wrk loads
Gatehouse's JWT-protected endpoint with one user's token, a second user logs a session out and
revokes an API key, several times, and the very next request with each must be a 401. Results go to
bench/results/peers-<date>.json; --check exits 1 if an acceptance ratio of issue 15 is not met.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness import (
    BENCH_VAR,
    ROOT,
    ensure_database,
    format_table,
    http_json,
    rss_mb,
    run_rounds,
    run_wrk,
    start_server,
    stop_process,
    worker_pids,
)

PEERS = Path(__file__).resolve().parent / "peers"
RESULTS = Path(__file__).resolve().parent / "results"
POSTGRES = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")

USERNAME = "bench"
REVOKE_USERNAME = "bench-revoke"
# Throwaway accounts in throwaway benchmark databases.
PASSWORD = "bench-account-not-a-secret-4f7c"

PUBLIC, ME, KEY, JWT = "public hello", "JWT me", "API key protected hello", "JWT protected hello"
SCENARIOS = [PUBLIC, ME, KEY, JWT]
GATEHOUSE, DRF, DRF_TUNED, FASTAPI_USERS = "Gatehouse", "DRF", "DRF CONN_MAX_AGE=60", "fastapi-users"

# The acceptance of issue 15: (label, numerator (server, scenario), denominator, minimum).
TARGETS = [
    ("Gatehouse public / DRF public", (GATEHOUSE, PUBLIC), (DRF, PUBLIC), 1.0),
    ("Gatehouse JWT me / DRF CONN_MAX_AGE=60 JWT me", (GATEHOUSE, ME), (DRF_TUNED, ME), 1.2),
    ("Gatehouse JWT me / fastapi-users me", (GATEHOUSE, ME), (FASTAPI_USERS, ME), 1.5),
    ("Gatehouse JWT protected / Gatehouse public", (GATEHOUSE, JWT), (GATEHOUSE, PUBLIC), 0.85),
    ("Gatehouse key protected / Gatehouse public", (GATEHOUSE, KEY), (GATEHOUSE, PUBLIC), 0.85),
]
MAX_RSS_MB = 90


@dataclass
class Target:
    """A running server and, per scenario it serves, the (path, request headers) wrk loads."""

    name: str
    base_url: str
    master_pid: int
    scenarios: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    description: str = ""


def _expect(status, body, wanted, what):
    if status != wanted:
        raise SystemExit(f"{what}: expected HTTP {wanted}, got {status}: {body}")
    return body


# PEER VIRTUALENVS AND PROCESSES
# ------------------------------------------------------------------------------


def peer_venv(name: str) -> Path:
    """var/bench/peer-venv-<name> with bench/peers/<name>/requirements.txt installed; the bin directory."""
    venv = BENCH_VAR / f"peer-venv-{name}"
    requirements = PEERS / name / "requirements.txt"
    stamp = venv / "installed-requirements.txt"
    wanted = requirements.read_text()
    if stamp.exists() and stamp.read_text() == wanted:
        return venv / "bin"
    print(f"Installing the {name} peer into {venv.relative_to(ROOT)} ...", file=sys.stderr)
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # noqa: S603
    subprocess.run(  # noqa: S603
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "-r", str(requirements)],
        check=True,
    )
    stamp.write_text(wanted)
    return venv / "bin"


@contextlib.contextmanager
def run_peer(command: list[str], *, cwd: Path, env: dict[str, str], port: int, ready_path: str) -> Iterator[int]:
    """Start a peer's server, wait until `ready_path` answers 200, yield its master PID; stop it on exit."""
    log_path = BENCH_VAR / f"peer-{port}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{command[0]} exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                if http_json("GET", f"http://127.0.0.1:{port}{ready_path}", timeout=2)[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"{command[0]} did not answer {ready_path} in 60s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield process.pid
    finally:
        stop_process(process)


def _wait_for_workers(master_pid: int, workers: int) -> None:
    """Until the master has its `workers` worker processes (uvicorn also starts a resource tracker)."""
    deadline = time.monotonic() + 30
    while len(serving_pids(master_pid)) < workers and time.monotonic() < deadline:
        time.sleep(0.2)


def serving_pids(master_pid: int) -> list[int]:
    """The worker processes of a master, leaving out multiprocessing's resource tracker."""
    pids = []
    for pid in worker_pids(master_pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in cmdline:
            pids.append(pid)
    return pids


# THE SERVERS
# ------------------------------------------------------------------------------


def start_drf(stack: contextlib.ExitStack, *, port: int, workers: int, conn_max_age: int, name: str) -> Target:
    bin_dir = peer_venv("drf")
    database_url = f"{POSTGRES}/peers_drf"
    ensure_database(database_url)
    env = {**os.environ, "PEER_DATABASE_URL": database_url, "CONN_MAX_AGE": str(conn_max_age)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    cwd = PEERS / "drf"
    manage = [str(bin_dir / "python"), "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=cwd, env=env, check=True)  # noqa: S603
    setup = subprocess.run(  # noqa: S603
        [*manage, "bench_setup", "--username", USERNAME, "--password", PASSWORD, "--key-name", f"benchmark-{port}"],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    api_key = json.loads(setup.stdout)["api_key"]
    command = [str(bin_dir / "gunicorn"), "--workers", str(workers), "--bind", f"127.0.0.1:{port}", "peer.wsgi"]
    master = stack.enter_context(run_peer(command, cwd=cwd, env=env, port=port, ready_path="/api/hello"))
    _wait_for_workers(master, workers)
    base = f"http://127.0.0.1:{port}"
    status, body = http_json("POST", f"{base}/api/token", body={"username": USERNAME, "password": PASSWORD})
    jwt = {"Authorization": f"Bearer {_expect(status, body, 200, f'{name} login')['access']}"}
    target = Target(name, base, master, description=f"gunicorn {workers} sync workers, CONN_MAX_AGE={conn_max_age}")
    target.scenarios = {
        PUBLIC: ("/api/hello", {}),
        ME: ("/api/me", jwt),
        KEY: ("/api/hello/key", {"Authorization": f"Api-Key {api_key}"}),
        JWT: ("/api/hello/protected", jwt),
    }
    return target


def _form_post(url: str, fields: dict[str, str]) -> tuple[int, object]:
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(), method="POST")  # noqa: S310
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def start_fastapi_users(stack: contextlib.ExitStack, *, port: int, workers: int) -> Target:
    bin_dir = peer_venv("fastapi_users")
    ensure_database(f"{POSTGRES}/peers_fastapi_users")
    database_url = POSTGRES.replace("postgres://", "postgresql+asyncpg://", 1) + "/peers_fastapi_users"
    env = {**os.environ, "PEER_DATABASE_URL": database_url}
    cwd = PEERS / "fastapi_users"
    subprocess.run([str(bin_dir / "python"), "app.py", "setup"], cwd=cwd, env=env, check=True)  # noqa: S603
    command = [str(bin_dir / "uvicorn"), "app:app", "--workers", str(workers), "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    master = stack.enter_context(run_peer(command, cwd=cwd, env=env, port=port, ready_path="/hello"))
    _wait_for_workers(master, workers)
    base = f"http://127.0.0.1:{port}"
    email = f"{USERNAME}@example.com"
    status, body = http_json("POST", f"{base}/auth/register", body={"email": email, "password": PASSWORD})
    if status != 201 and "ALREADY_EXISTS" not in json.dumps(body):
        raise SystemExit(f"fastapi-users register: HTTP {status}: {body}")
    status, body = _form_post(f"{base}/auth/jwt/login", {"username": email, "password": PASSWORD})
    jwt = {"Authorization": f"Bearer {_expect(status, body, 200, 'fastapi-users login')['access_token']}"}
    target = Target(FASTAPI_USERS, base, master, description=f"uvicorn[standard] --workers {workers}")
    target.scenarios = {PUBLIC: ("/hello", {}), ME: ("/users/me", jwt)}
    return target


def _gatehouse_login(server, username: str) -> dict[str, str]:
    created = server.manage("create_user", "--username", username, "--password-stdin", input=PASSWORD, check=False)
    if created.returncode and "already" not in (created.stderr + created.stdout):
        raise SystemExit(f"create_user failed: {created.stderr or created.stdout}")
    status, body = server.request("POST", "/api/v1/auth/login", {"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {_expect(status, body, 200, f'login {username}')['access_token']}"}


def _gatehouse_key(server, jwt: dict[str, str], name: str) -> dict:
    # Keys left active by an interrupted run would count towards the per-user cap.
    status, body = server.request("GET", "/api/v1/auth/api-keys?page_size=100", headers=jwt)
    for stale in _expect(status, body, 200, "list keys")["results"]:
        if stale["is_active"] and stale["name"] == name:
            server.request("DELETE", f"/api/v1/auth/api-keys/{stale['id']}", headers=jwt)
    status, body = server.request("POST", "/api/v1/auth/api-keys", {"name": name}, headers=jwt)
    return _expect(status, body, 201, "create API key")


def gatehouse_target(server, workers: int) -> Target:
    jwt = _gatehouse_login(server, USERNAME)
    key = _gatehouse_key(server, jwt, "benchmark")
    _wait_for_workers(server.process.pid, workers)
    target = Target(GATEHOUSE, server.base_url, server.process.pid, description=server.description)
    target.scenarios = {
        PUBLIC: ("/api/v1/hello", {}),
        ME: ("/api/v1/auth/me", jwt),
        KEY: ("/api/v1/hello/protected", {"X-API-Key": key["api_key"]}),
        JWT: ("/api/v1/hello/protected", jwt),
    }
    return target


# REVOCATION UNDER LOAD
# ------------------------------------------------------------------------------


def revocation_under_load(server, target: Target, *, times: int, connections: int) -> dict:
    """While wrk loads the JWT-protected hello with the first user's token, a second user ends a session
    and revokes a key, `times` times each; the very next request with that credential must be a 401."""
    path, headers = target.scenarios[JWT]
    stop, loads, errors = threading.Event(), [], []

    def background():
        # Back-to-back short wrk runs until the checks are done: the load lasts as long as they take.
        while not stop.is_set():
            try:
                loads.append(
                    run_wrk(
                        server.url(path),
                        headers={"Accept": "application/json", **headers},
                        duration=2,
                        connections=connections,
                    )
                )
            except RuntimeError as error:  # a non-2xx for the first user: the second one's revocation touched it
                errors.append(str(error))
                return

    thread = threading.Thread(target=background)
    thread.start()
    time.sleep(1)  # wrk is up and loading

    def loaded() -> bool:
        return thread.is_alive() and not errors

    checks = {"logout": [], "key revocation": []}
    try:
        for _ in range(times):
            jwt = _gatehouse_login(server, REVOKE_USERNAME)
            _expect(*server.request("GET", path, headers=jwt), 200, "second user's JWT before logout")
            _expect(*server.request("POST", "/api/v1/auth/logout", {}, headers=jwt), 204, "logout")
            after_logout = server.request("GET", path, headers=jwt)[0]
            checks["logout"].append({"status": after_logout, "under_load": loaded()})

            # The key is revoked from another session of its owner, which stays logged in.
            owner = key_owner_session(server)
            key = _gatehouse_key(server, owner, "revoke")
            key_headers = {"X-API-Key": key["api_key"]}
            _expect(*server.request("GET", path, headers=key_headers), 200, "second user's key before revocation")
            revoked = server.request("DELETE", f"/api/v1/auth/api-keys/{key['id']}", headers=owner)
            _expect(*revoked, 204, "revoke key")
            after_revocation = server.request("GET", path, headers=key_headers)[0]
            checks["key revocation"].append({"status": after_revocation, "under_load": loaded()})
    finally:
        stop.set()
        thread.join()
    summary = {
        what: {
            "checks": len(results),
            "refused_next_request": sum(r["status"] == 401 for r in results),
            "while_loaded": sum(r["under_load"] for r in results),
            "statuses": [r["status"] for r in results],
        }
        for what, results in checks.items()
    }
    requests = sum(run["requests"] for run in loads)
    seconds = sum(run["requests"] / run["rps"] for run in loads if run["rps"])
    summary["load"] = {"requests": requests, "rps": requests / seconds if seconds else 0.0, "errors": errors}
    return summary


_owner_session: dict[str, dict[str, str]] = {}


def key_owner_session(server) -> dict[str, str]:
    """A session of the second user kept for the whole check, to create and revoke its keys from."""
    if "headers" not in _owner_session:
        _owner_session["headers"] = _gatehouse_login(server, REVOKE_USERNAME)
    return _owner_session["headers"]


# REPORT
# ------------------------------------------------------------------------------


def rss_report(targets: list[Target]) -> dict[str, list[float]]:
    return {
        target.name: [round(mb, 1) for pid in serving_pids(target.master_pid) if (mb := rss_mb(pid)) is not None]
        for target in targets
    }


def ratios(results: dict) -> list[dict]:
    found = []
    for label, numerator, denominator, minimum in TARGETS:
        top, bottom = results.get(numerator), results.get(denominator)
        value = top["rps"] / bottom["rps"] if top and bottom else None
        found.append({"ratio": label, "value": value, "target": minimum, "met": value is not None and value >= minimum})
    return found


def print_report(targets, results, options, revocation, rss, found) -> None:
    names = [target.name for target in targets]
    rows = []
    for scenario in SCENARIOS:
        row = [scenario]
        for name in names:
            figures = results.get((name, scenario))
            row.append(f"{figures['rps']:.0f} ({figures['p99_ms']:.1f})" if figures else "-")
        rows.append(row)
    print()
    print(
        f"req/s (p99 ms), medians of {options.rounds} interleaved rounds of {options.duration:.0f}s, "
        f"wrk {options.connections} connections, {options.workers} workers each"
    )
    print(format_table(["scenario", *names], rows))
    print()
    for target in targets:
        print(f"{target.name}: {target.description}")
    print()
    print(
        format_table(
            ["ratio (req/s)", "value", "target", "met"],
            [
                [
                    r["ratio"],
                    f"{r['value']:.2f}" if r["value"] is not None else "-",
                    f">= {r['target']:.2f}",
                    "yes" if r["met"] else "NO",
                ]
                for r in found
            ],
        )
    )
    print()
    for name, sizes in rss.items():
        print(f"worker RSS after the run, {name}: " + ", ".join(f"{mb:.0f} MB" for mb in sizes))
    print()
    for what in ("logout", "key revocation"):
        figures = revocation[what]
        refused = f"{figures['refused_next_request']}/{figures['checks']}"
        print(
            f"revocation under load, {what}: next request refused {refused} "
            f"({figures['while_loaded']} while wrk was loading; statuses {figures['statuses']})"
        )
    load = revocation["load"]
    if load["errors"]:
        print(f"  the first user's load during the checks FAILED: {load['errors'][0]}")
    else:
        print(f"  the first user's load meanwhile: {load['requests']} requests, {load['rps']:.0f} req/s, all 2xx")


def rotation(keys: list[str], round_index: int, rounds: int) -> list[str]:
    """The order of a round: each starts 1/rounds of the list further on, so no pair always runs first or last."""
    start = (round_index * len(keys)) // max(1, rounds)
    return keys[start:] + keys[:start]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds of load per run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the table shows medians")
    parser.add_argument("--connections", type=int, default=16, help="concurrent wrk connections")
    parser.add_argument("--workers", type=int, default=2, help="workers of every server")
    parser.add_argument("--port", type=int, default=8770, help="first of the four peer ports (Gatehouse: BENCH_PORT)")
    parser.add_argument("--revocations", type=int, default=5, help="logouts and key revocations checked under load")
    parser.add_argument("--check", action="store_true", help="exit 1 if an acceptance ratio or the RSS cap is not met")
    options = parser.parse_args()

    overrides = {
        # config/gunicorn.py recycles workers every ~1000 requests; under an even load all of them reach that
        # together and restart at once, which would measure restarts (as in bench/auth.py). Off here.
        "GUNICORN_MAX_REQUESTS": os.environ.get("GUNICORN_MAX_REQUESTS", "0"),
        # The revocation check logs the second user in a dozen times from 127.0.0.1: no throttle there.
        "THROTTLE_LOGIN_ADDRESS_RATE": "10000/min",
    }
    load_before = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(start_server(overrides, workers=options.workers))
        targets = [
            gatehouse_target(server, options.workers),
            start_drf(stack, port=options.port, workers=options.workers, conn_max_age=0, name=DRF),
            start_drf(stack, port=options.port + 1, workers=options.workers, conn_max_age=60, name=DRF_TUNED),
            start_fastapi_users(stack, port=options.port + 2, workers=options.workers),
        ]
        pairs = [(target, scenario) for scenario in SCENARIOS for target in targets if scenario in target.scenarios]
        for target, scenario in pairs:
            path, headers = target.scenarios[scenario]
            _expect(*http_json("GET", target.base_url + path, headers=headers), 200, f"{target.name} {scenario}")

        def load(target: Target, scenario: str, duration: float) -> dict:
            path, headers = target.scenarios[scenario]
            return run_wrk(
                target.base_url + path,
                headers={"Accept": "application/json", **headers},
                duration=duration,
                connections=options.connections,
            )

        print("Warming up every server and scenario ...", file=sys.stderr)
        for target, scenario in pairs:
            load(target, scenario, 2)
        keys = [f"{target.name} | {scenario}" for target, scenario in pairs]
        print(
            f"Measuring {len(pairs)} pairs x {options.rounds} rounds x {options.duration:.0f}s, "
            f"{options.connections} connections ...",
            file=sys.stderr,
        )
        summary = run_rounds(
            {
                key: (lambda target=target, scenario=scenario: load(target, scenario, options.duration))
                for key, (target, scenario) in zip(keys, pairs, strict=True)
            },
            rounds=options.rounds,
            order=lambda r: rotation(keys, r, options.rounds),
        )
        rss = rss_report(targets)
        raw = BENCH_VAR / "peers-wrk-output.txt"
        raw.write_text(
            "\n".join(
                f"== {key}, round {n}\n{run['output']}"
                for key, figures in summary.items()
                for n, run in enumerate(figures["runs"], 1)
            )
        )
        print("Checking revocation under load ...", file=sys.stderr)
        revocation = revocation_under_load(
            server,
            targets[0],
            times=options.revocations,
            connections=options.connections,
        )

    results = {
        tuple(key.split(" | ", 1)): {k: v for k, v in figures.items() if k != "runs"}
        for key, figures in summary.items()
    }
    found = ratios(results)
    print_report(targets, results, options, revocation, rss, found)
    # Other work on the machine shows here: with a load average above the CPU count, trust only the ratios.
    load_average = {"before": load_before, "after": os.getloadavg()[0], "cpus": os.cpu_count()}
    print(
        f"\nload average (1 min): {load_average['before']:.1f} before, {load_average['after']:.1f} after, "
        f"{os.cpu_count()} CPUs"
    )

    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"peers-{datetime.date.today().isoformat()}.json"
    out.write_text(
        json.dumps(
            {
                "command": " ".join(["bench/peers.py", *sys.argv[1:]]),
                "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "load_average": load_average,
                "options": vars(options),
                "servers": {target.name: target.description for target in targets},
                "results": [
                    {"server": name, "scenario": scenario, **figures} for (name, scenario), figures in results.items()
                ],
                "ratios": found,
                "worker_rss_mb": rss,
                "revocation_under_load": revocation,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\n(results: {out.relative_to(ROOT)}; wrk output of every run: {raw.relative_to(ROOT)})")

    if options.check:
        failures = [r["ratio"] for r in found if not r["met"]]
        failures += [f"{GATEHOUSE} worker RSS {mb:.0f} MB > {MAX_RSS_MB}" for mb in rss[GATEHOUSE] if mb > MAX_RSS_MB]
        for what in ("logout", "key revocation"):
            if revocation[what]["refused_next_request"] != revocation[what]["checks"]:
                failures.append(f"{what} not refused on the next request")
        if revocation["load"]["errors"]:
            failures.append("the first user's load failed during the revocation checks")
        if failures:
            print("\nFAIL: " + "; ".join(failures), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
