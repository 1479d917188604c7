"""Instructions a request costs, counted by valgrind's callgrind: a figure that does not move with the machine's load.

    .venv/bin/python bench/instructions.py [--requests 1000]

wrk's req/s on a shared 2-core machine swing by 10% between runs of the same server; an instruction count is
the same in every run, so it can tell a 2% cut from noise. Counted in-process (the WSGI application called
directly: no server, no sockets, so what gunicorn and the kernel do per request, alike for both, is left out):

- Gatehouse's public hello, JWT-protected and key-protected hello, under production settings;
- the stock DRF peer's public hello (bench/peers/drf, in the virtualenv bench/peers.py makes);
- one gunicorn access line of Gatehouse's (config.logging.GunicornJSONLogger.access).

Each is run twice under callgrind, with a warm-up alone and with `--requests` more after it; the difference
divided by `--requests` is the figure. Needs valgrind (Debian's package) and the benchmark database of
bench/harness.py (PostgreSQL and Redis, for the authenticated requests).
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WARM_UP = 300


def _environ(path: str, headers: dict[str, str]) -> dict:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_ACCEPT": "application/json",
        "HTTP_USER_AGENT": "wrk",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    environ.update({"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()})
    return environ


def child(what: str, count: int) -> None:
    """Runs inside callgrind: WARM_UP + `count` calls of one thing."""
    # The script's folder first on the path would make bench/posts.py the posts app.
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != BENCH]
    if what == "access line":
        from gunicorn.config import Config

        from config.logging import GunicornJSONLogger

        config = Config()
        config.set("accesslog", os.devnull)
        logger = GunicornJSONLogger(config)

        class Response:
            status, sent = "200 OK", 27
            headers = [("Content-Type", "application/json"), ("X-Request-ID", "0" * 32)]

        environ = _environ("/api/v1/hello", {})
        took = datetime.timedelta(microseconds=1500)
        for _ in range(WARM_UP + count):
            logger.access(Response, None, environ, took)
        return
    if what == "DRF public hello":
        from peer.wsgi import application

        path, headers = "/api/hello", {}
    else:
        from config.wsgi import application

        path = "/api/v1/hello" if what == "public hello" else "/api/v1/hello/protected"
        headers = {"X-API-Key": os.environ["BENCH_KEY"]} if what == "key hello" else {}
        if what == "JWT hello":
            headers = {"Authorization": os.environ["BENCH_JWT"]}
    statuses = []
    for _ in range(WARM_UP + count):
        response = application(_environ(path, headers), lambda status, _headers, exc_info=None: statuses.append(status))
        b"".join(response)
        response.close()
    if not statuses[-1].startswith("200"):
        raise SystemExit(f"{what}: {statuses[-1]}")


def _instructions(command: list[str], env: dict[str, str]) -> int:
    valgrind = shutil.which("valgrind") or "valgrind"
    with tempfile.TemporaryDirectory() as directory:
        done = subprocess.run(  # noqa: S603
            [valgrind, "--tool=callgrind", f"--callgrind-out-file={directory}/out", *command],
            env=env,
            capture_output=True,
            text=True,
        )
    match = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or not match:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return int(match.group(1))


def per_request(what: str, python: str, env: dict[str, str], count: int) -> int:
    command = [python, str(Path(__file__).resolve()), "--child", what]
    base = _instructions([*command, "0"], env)
    return (_instructions([*command, str(count)], env) - base) // count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests counted after the warm-up")
    parser.add_argument("--child", nargs=2, metavar=("WHAT", "COUNT"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.child[0], int(options.child[1]))
        return 0
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed: apt-get install valgrind")

    sys.path.insert(0, str(BENCH))
    from harness import start_server
    from peers import USERNAME, _gatehouse_key, _gatehouse_login, peer_venv

    figures = {}
    # A server only to make the benchmark user, its token and key; the counting runs in-process.
    with start_server({"GUNICORN_ACCESS_LOG": ""}, workers=1) as server:
        jwt = _gatehouse_login(server, USERNAME)
        key = _gatehouse_key(server, jwt, "instructions")["api_key"]
        env = {**server.env, "PYTHONPATH": str(ROOT), "BENCH_JWT": jwt["Authorization"], "BENCH_KEY": key}
        for what in ("public hello", "JWT hello", "key hello", "access line"):
            figures[what] = per_request(what, sys.executable, env, options.requests)
    drf_env = {**os.environ, "PYTHONPATH": str(BENCH / "peers" / "drf"), "DJANGO_SETTINGS_MODULE": "peer.settings"}
    drf_python = str(peer_venv("drf") / "python")
    figures["DRF public hello"] = per_request("DRF public hello", drf_python, drf_env, options.requests)

    print("instructions per request (callgrind, in-process, no server):")
    for what, count in figures.items():
        print(f"  {what:18s} {count:>10,}")
    with_line = figures["public hello"] + figures["access line"]
    print(f"  Gatehouse public hello with its access line / DRF's: {with_line / figures['DRF public hello']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
