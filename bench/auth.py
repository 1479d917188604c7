"""What authentication costs: GET /api/v1/hello (public) vs /api/v1/hello/protected with a JWT and with an API key.

    .venv/bin/python bench/auth.py [--duration 10] [--rounds 5] [--connections 8] [--min-ratio 0.7]

Starts Gatehouse the production way (gunicorn, config.settings.production with DEBUG off,
PostgreSQL, Redis; see bench/harness.py for the environment variables), creates a user,
logs in over HTTP for a JWT, creates an API key over HTTP with that JWT, loads each
endpoint with wrk, interleaving the scenarios over several rounds, and prints a table
of requests/s and p50/p99 latency (medians of the rounds) with each authenticated
figure's ratio to the public one. It ends by revoking the key and logging the JWT out,
and checks that both are refused on the very next request.
"""

import argparse
import os
import statistics
import sys

from harness import BENCH_VAR, format_table, run_rounds, run_wrk, start_server

USERNAME = "bench"
# A throwaway account in the throwaway benchmark database.
PASSWORD = "bench-account-not-a-secret-4f7c"
PUBLIC = "/api/v1/hello"
PROTECTED = "/api/v1/hello/protected"
KEYS = "/api/v1/auth/api-keys"
KEY_NAME = "benchmark"
PUBLIC_SCENARIO = "public (no credential)"


def _expect(status, body, wanted, what):
    if status != wanted:
        raise SystemExit(f"{what}: expected HTTP {wanted}, got {status}: {body}")
    return body


def prepare(server) -> dict[str, dict[str, str]]:
    """The user, a JWT and an API key; returns the request headers of each scenario."""
    created = server.manage("create_user", "--username", USERNAME, "--password-stdin", input=PASSWORD, check=False)
    if created.returncode and "already" not in (created.stderr + created.stdout):
        raise SystemExit(f"create_user failed: {created.stderr or created.stdout}")
    status, body = server.request("POST", "/api/v1/auth/login", {"username": USERNAME, "password": PASSWORD})
    access = _expect(status, body, 200, "login")["access_token"]
    jwt = {"Authorization": f"Bearer {access}"}
    # Keys left active by an interrupted run would count towards the per-user cap.
    status, body = server.request("GET", f"{KEYS}?page_size=100", headers=jwt)
    for stale in _expect(status, body, 200, "list keys")["results"]:
        if stale["is_active"] and stale["name"] == KEY_NAME:
            server.request("DELETE", f"{KEYS}/{stale['id']}", headers=jwt)
    status, body = server.request("POST", KEYS, {"name": KEY_NAME}, headers=jwt)
    key = _expect(status, body, 201, "create API key")
    scenarios = {
        PUBLIC_SCENARIO: ({}, PUBLIC),
        "JWT (Authorization: Bearer)": (jwt, PROTECTED),
        "API key (X-API-Key)": ({"X-API-Key": key["api_key"]}, PROTECTED),
    }
    for name, (headers, path) in scenarios.items():
        _expect(*server.request("GET", path, headers=headers), 200, name)
    return {"scenarios": scenarios, "jwt": jwt, "key": key}


def check_revocation(server, prepared) -> list[str]:
    """Revoke the key and end the JWT's session; each must be refused on the next request."""
    jwt, key = prepared["jwt"], prepared["key"]
    lines = []
    status, _ = server.request("DELETE", f"{KEYS}/{key['id']}", headers=jwt)
    _expect(status, None, 204, "revoke API key")
    status, _ = server.request("GET", PROTECTED, headers={"X-API-Key": key["api_key"]})
    lines.append(f"API key revoked -> next request {status} ({'immediate' if status == 401 else 'NOT REFUSED'})")
    status, _ = server.request("POST", "/api/v1/auth/logout", {}, headers=jwt)
    _expect(status, None, 204, "logout")
    status, _ = server.request("GET", PROTECTED, headers=jwt)
    lines.append(f"JWT logged out  -> next request {status} ({'immediate' if status == 401 else 'NOT REFUSED'})")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds of load per scenario and round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the table shows medians")
    parser.add_argument("--connections", type=int, default=8, help="concurrent wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: CPUs)")
    parser.add_argument("--min-ratio", type=float, default=0.0, help="exit 1 if an authenticated ratio is below")
    options = parser.parse_args()

    # config/gunicorn.py recycles workers every ~1000 requests; under an even load all of them
    # reach that together and restart at once, leaving seconds with no worker at all, which
    # would measure restarts, not authentication. Off here unless GUNICORN_MAX_REQUESTS is set.
    overrides = {"GUNICORN_MAX_REQUESTS": os.environ.get("GUNICORN_MAX_REQUESTS", "0")}
    with start_server(overrides, workers=options.workers) as server:
        prepared = prepare(server)
        scenarios = prepared["scenarios"]

        def load(headers, path, duration):
            before = server.cpu_seconds()
            result = run_wrk(
                server.url(path),
                headers={"Accept": "application/json", **headers},
                duration=duration,
                connections=options.connections,
                threads=options.threads,
            )
            after = server.cpu_seconds()
            result["cpu_ms"] = sum(after.values()) - sum(before.values())
            result["cpu_ms"] *= 1000 / result["requests"]
            return result

        print(f"Warming up {server.description} ...", file=sys.stderr)
        for headers, path in scenarios.values():
            load(headers, path, 2)
        print(
            f"Measuring {len(scenarios)} scenarios x {options.rounds} rounds x {options.duration:.0f}s, "
            f"{options.connections} connections ...",
            file=sys.stderr,
        )
        results = run_rounds(
            {
                name: (lambda headers=headers, path=path: load(headers, path, options.duration))
                for name, (headers, path) in scenarios.items()
            },
            rounds=options.rounds,
        )
        revocation = check_revocation(server, prepared)
        raw = BENCH_VAR / "auth-wrk-output.txt"
        raw.write_text(
            "\n".join(
                f"== {name}, round {n}\n{run['output']}"
                for name, figures in results.items()
                for n, run in enumerate(figures["runs"], 1)
            )
        )

    public = results[PUBLIC_SCENARIO]
    rows, ratios = [], []
    for name, figures in results.items():
        ratio = figures["rps"] / public["rps"]
        figures["cpu_ms"] = statistics.median(run["cpu_ms"] for run in figures["runs"])
        if name != PUBLIC_SCENARIO:
            ratios.append(ratio)
        rows.append(
            [
                name,
                f"{figures['rps']:.0f}",
                f"{figures['p50_ms']:.2f}",
                f"{figures['p99_ms']:.2f}",
                f"{ratio:.2f}",
                f"{figures['cpu_ms']:.2f}",
                f"{public['cpu_ms'] / figures['cpu_ms']:.2f}" if name != PUBLIC_SCENARIO else "1.00",
            ]
        )
    print()
    print(
        f"GET {PUBLIC} vs {PROTECTED}: {server.description}, wrk {options.connections} connections, "
        f"medians of {options.rounds} interleaved rounds of {options.duration:.0f}s"
    )
    print(
        format_table(
            ["scenario", "req/s", "p50 ms", "p99 ms", "req/s vs public", "server CPU ms/req", "CPU vs public"], rows
        )
    )
    print()
    for name, figures in results.items():
        print(f"req/s per round, {name}: " + " / ".join(f"{rps:.0f}" for rps in figures["rounds_rps"]))
    print()
    for line in revocation:
        print(line)
    print(f"(wrk output of every run: {raw.relative_to(BENCH_VAR.parent.parent)})")
    if options.min_ratio and min(ratios) < options.min_ratio:
        print(f"\nFAIL: an authenticated ratio is below {options.min_ratio:.2f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
