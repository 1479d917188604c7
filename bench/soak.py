"""Soak: the production topology under a mixed load for a long time; throughput, p99 and RSS minute by minute.

    .venv/bin/python bench/soak.py [--duration 10] [--clients 4] [--fraction 0.8] [--peak-seconds 45]
                                   [--tasks-per-minute 3] [--out bench/results]

Starts gunicorn with production settings (bench/harness.py's start_server), a Celery worker and
beat (start_celery) on PostgreSQL (database `gatehouse_soak`, made afresh) and Redis (DB 13 for
cache, throttles and broker, flushed), and a local static site for the browser tasks. Each of
`--clients` processes registers its own account and API key, then loops over a weighted mix on one
keep-alive connection (http.client): `me` (JWT), an API-key call, the post list, post creation,
votes (API key), refresh with rotation (the client keeps its newest pair) and login (which then
logs the client's previous session out). A thread of the parent creates and initiates a browser
task every 60/--tasks-per-minute seconds against the local site and polls each until it ends.

Phase 1 runs the clients flat out (closed loop) for --peak-seconds: the peak rate of the mix.
Phase 2 holds --fraction of it open loop (each client paces itself to its share) for --duration
minutes. Every minute the parent samples the RSS of each server process (gunicorn master and
workers, Celery worker and its pool processes, beat; psutil) and prints throughput, p50/p99 and
errors per endpoint (an error: any status but the expected one, counted by status; 0 means no
answer). At the end it writes soak-<date>.json and soak-<date>.png (matplotlib) under --out,
copies the chart to soak-latest.png (the README's link), and checks issue 17's acceptance: 0
errors, every task ended, the last minute's p99 within 1.5x of the first's, and RSS growth of
each process over the last 5 minutes under 5%. Exit status 1 if a check fails.

The throttles are raised for the run (every THROTTLE_*_RATE of config/settings/base.py to
1000000/min): one address drives the whole load, and a 429 would measure the throttle, not the
service. Environment: SOAK_DATABASE_URL, SOAK_REDIS_URL, SOAK_PORT (8790).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import json
import multiprocessing
import os
import queue
import random
import re
import secrets
import shutil
import sys
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from harness import BENCH_VAR, ROOT, format_table, start_celery, start_server

RESULTS = Path(__file__).resolve().parent / "results"
DATABASE_URL = os.environ.get("SOAK_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/gatehouse_soak")
REDIS_URL = os.environ.get("SOAK_REDIS_URL", "redis://127.0.0.1:6379/13")
PORT = int(os.environ.get("SOAK_PORT", 8790))
API = "/api/v1"
NO_ANSWER = 0  # the status recorded for a connection error or a timeout
TERMINAL = ("completed", "failed", "cancelled")

# Endpoint name -> the statuses that count as success.
EXPECTED = {
    "login": {200},
    "logout": {204},
    "refresh": {200},
    "me": {200},
    "api key call": {200},
    "post list": {200},
    "post create": {201},
    "vote": {200, 201},  # 201 for a first vote, 200 when the client had voted already
    "task create": {201},
    "task initiate": {202},
    "task poll": {200},
}
# The mix: operation -> weight. Login is rare (an Argon2 hash per call) and carries a logout.
MIX = {"me": 25, "api key call": 25, "post list": 14, "post create": 8, "vote": 12, "refresh": 12, "login": 4}


def throttle_env() -> dict[str, str]:
    """Every THROTTLE_*_RATE that config/settings/base.py reads, raised out of the load's way."""
    names = re.findall(r'env\("(THROTTLE_\w+_RATE)"', (ROOT / "config" / "settings" / "base.py").read_text())
    return dict.fromkeys(names, "1000000/min")


# ONE CLIENT
# ------------------------------------------------------------------------------


@dataclass
class Account:
    username: str
    password: str
    api_key: str


class HTTPClient:
    """JSON over one keep-alive connection (reopened after an error or a `Connection: close`); every
    request is recorded as (wall time sent, endpoint, status, latency ms) in `events`."""

    def __init__(self, base_url: str, timeout: float = 10):
        parts = urllib.parse.urlsplit(base_url)
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        self.events: list[tuple[float, str, int, float]] = []
        self.lock = threading.Lock()

    def call(self, endpoint: str, method: str, path: str, body=None, headers=None) -> tuple[int, object]:
        all_headers = {"Accept": "application/json", **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        sent, started = time.time(), time.perf_counter()
        try:
            self.connection.request(method, API + path, body=data, headers=all_headers)
            response = self.connection.getresponse()
            status, raw = response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()  # the next request opens a new connection
            status, raw = NO_ANSWER, b""
        latency_ms = (time.perf_counter() - started) * 1000
        with self.lock:
            self.events.append((sent, endpoint, status, latency_ms))
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, None

    def take_events(self) -> list[tuple[float, str, int, float]]:
        with self.lock:
            events, self.events = self.events, []
        return events


class LoadClient:
    """One user of the mix: its tokens (always the newest pair), its API key and the posts it can vote on."""

    def __init__(self, base_url: str, account: Account, label: str, seed: int):
        self.http = HTTPClient(base_url)
        self.account, self.label = account, label
        self.random = random.Random(seed)  # noqa: S311 (a reproducible load mix, not a secret)
        self.access = self.refresh_token = ""
        self.post_ids: list[int] = []
        self.created_posts: list[tuple[str, int]] = []  # (content marker, status) of every post create
        self.sequence = 0
        self.operations = list(MIX)
        self.weights = [MIX[name] for name in self.operations]

    @property
    def jwt(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}

    @property
    def key(self) -> dict[str, str]:
        return {"X-API-Key": self.account.api_key}

    def login(self) -> None:
        credentials = {"username": self.account.username, "password": self.account.password}
        status, body = self.http.call("login", "POST", "/auth/login", credentials)
        if status != 200:
            return
        previous = (self.access, self.refresh_token)
        self.access, self.refresh_token = body["access_token"], body["refresh_token"]
        if previous[0]:  # a client keeps one session: the one it replaced is logged out
            self.http.call(
                "logout",
                "POST",
                "/auth/logout",
                {"refresh_token": previous[1]},
                {"Authorization": f"Bearer {previous[0]}"},
            )

    def step(self) -> None:
        """One operation of the mix, drawn by weight."""
        operation = self.random.choices(self.operations, self.weights)[0]
        status = self.perform(operation)
        if status == 401:  # a session lost (e.g. a rotation whose answer never came): log in again
            self.access = ""

    def perform(self, operation: str) -> int | None:
        status = None
        if not self.access or operation == "login":
            self.login()
        elif operation == "me":
            status, _ = self.http.call("me", "GET", "/auth/me", headers=self.jwt)
        elif operation == "api key call":
            self.http.call("api key call", "GET", "/hello/protected", headers=self.key)
        elif operation == "post list":
            status, body = self.http.call("post list", "GET", "/posts", headers=self.jwt)
            if status == 200 and body.get("results"):
                self.post_ids = [post["id"] for post in body["results"]]
        elif operation == "post create":
            self.create_post()
        elif operation == "vote" and self.post_ids:
            self.http.call("vote", "POST", f"/posts/{self.random.choice(self.post_ids)}/vote", headers=self.key)
        elif operation == "vote":
            self.create_post()
        elif operation == "refresh":
            status, body = self.http.call("refresh", "POST", "/auth/refresh", {"refresh_token": self.refresh_token})
            if status == 200:
                self.access, self.refresh_token = body["access_token"], body["refresh_token"]
        return status

    def create_post(self) -> None:
        self.sequence += 1
        marker = f"{self.label}-{self.sequence}"
        status, body = self.http.call("post create", "POST", "/posts", {"content": f"load post {marker}"}, self.jwt)
        self.created_posts.append((marker, status))
        if status == 201:
            self.post_ids.append(body["id"])
            del self.post_ids[:-40]


def client_process(
    base_url: str, account: Account, label: str, seed: int, plan: dict, events: multiprocessing.Queue
) -> None:
    """A client's life: log in, wait for `plan["start_at"]` (wall clock, the same for every client), then run
    `plan["phases"]` in turn, each (mode, seconds, requests/s); events go to the parent every second, and at the
    end the client's post markers (for the chaos invariants). `plan["stop"]`, an Event, ends the run early."""
    client = LoadClient(base_url, account, label, seed)
    client.login()
    client.http.take_events()  # the first login is set-up, not load
    time.sleep(max(0, plan["start_at"] - time.time()))
    last_flush = time.monotonic()
    for mode, seconds, rate in plan["phases"]:
        end = time.monotonic() + seconds
        next_at = time.monotonic()
        while time.monotonic() < end and not plan["stop"].is_set():
            if mode == "open":
                # Paced by requests sent: an operation of two requests (login + logout) takes two slots.
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(min(delay, end - time.monotonic()))
                    if time.monotonic() >= end:
                        break
                sent_before = len(client.http.events)
                client.step()
                next_at += max(1, len(client.http.events) - sent_before) / rate
            else:
                client.step()
            if time.monotonic() - last_flush >= 1:
                events.put(("events", client.http.take_events()))
                last_flush = time.monotonic()
    events.put(("events", client.http.take_events()))
    events.put(("done", {"label": label, "posts": client.created_posts}))


# THE LOAD
# ------------------------------------------------------------------------------


@dataclass
class Load:
    """Client processes started by `start_load` and the events they report, collected by a thread."""

    processes: list[multiprocessing.Process]
    channel: multiprocessing.Queue
    stop_event: object
    label: str = ""
    events: list[tuple[float, str, int, float]] = field(default_factory=list)
    finished: list[dict] = field(default_factory=list)
    thread: threading.Thread | None = None

    def collect(self) -> None:
        while len(self.finished) < len(self.processes):
            try:
                kind, payload = self.channel.get(timeout=1)
            except queue.Empty:
                if not any(process.is_alive() for process in self.processes):
                    break
                continue
            if kind == "events":
                self.events.extend(payload)
            else:
                self.finished.append(payload)

    def stop(self) -> None:
        self.stop_event.set()
        self.join()

    def join(self) -> None:
        for process in self.processes:
            process.join()
        if self.thread is not None:
            self.thread.join()


def start_load(
    base_url: str,
    accounts: list[Account],
    phases: list[tuple[str, float, float]],
    *,
    start_at: float,
    seed: int = 17,
    label: str = "c",
) -> Load:
    """One process per account, each running `phases` ((mode, seconds, requests/s per client)...) from the wall
    time `start_at` on (leave a few seconds for the processes to start and log in). `Load.stop()` ends them
    early. Client i marks the posts it creates "<label><i>-<n>"."""
    context = multiprocessing.get_context("spawn")  # no inherited sockets, threads or Django state
    channel, stop_event = context.Queue(), context.Event()
    plan = {"phases": phases, "start_at": start_at, "stop": stop_event}
    processes = [
        context.Process(
            target=client_process,
            args=(base_url, account, f"{label}{index}", seed + index, plan, channel),
            daemon=True,
        )
        for index, account in enumerate(accounts)
    ]
    load = Load(processes=processes, channel=channel, stop_event=stop_event, label=label)
    for process in processes:
        process.start()
    load.thread = threading.Thread(target=load.collect, daemon=True)
    load.thread.start()
    return load


def make_accounts(base_url: str, count: int, prefix: str) -> list[Account]:
    """Register `count` accounts over HTTP, each with an API key holding every scope."""
    http = HTTPClient(base_url)
    accounts = []
    for index in range(count):
        username = f"{prefix}{index}-{secrets.token_hex(3)}"
        password = "Load-" + secrets.token_urlsafe(16)
        body = {"username": username, "email": f"{username}@example.com", "password": password, "name": username}
        status, answer = http.call("register", "POST", "/auth/register", body)
        if status != 201:
            raise SystemExit(f"register {username}: HTTP {status}: {answer}")
        status, tokens = http.call("login", "POST", "/auth/login", {"username": username, "password": password})
        if status != 200:
            raise SystemExit(f"login {username}: HTTP {status}: {tokens}")
        jwt = {"Authorization": f"Bearer {tokens['access_token']}"}
        status, key = http.call("key", "POST", "/auth/api-keys", {"name": "load"}, jwt)
        if status != 201:
            raise SystemExit(f"API key for {username}: HTTP {status}: {key}")
        accounts.append(Account(username, password, key["api_key"]))
    return accounts


# BROWSER TASKS
# ------------------------------------------------------------------------------


class TaskDriver:
    """Creates and initiates a browser task every `interval` seconds (or keeps `depth` runs in flight) against
    the local site, and polls each until it ends. Runs in a thread of the parent."""

    def __init__(self, base_url: str, account: Account, site_url: str, *, interval: float = 20, depth: int = 0):
        self.http = HTTPClient(base_url, timeout=15)
        self.key = {"X-API-Key": account.api_key}
        self.site_url, self.interval, self.depth = site_url, interval, depth
        self.started: dict[int, float] = {}  # task id -> when its initiate answered 202
        self.ended: dict[int, dict] = {}  # task id -> its last state
        self.refused: Counter = Counter()  # statuses of creates and initiates that failed
        self.stop_event, self.creating = threading.Event(), threading.Event()
        self.creating.set()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def steps(self, term: str) -> list[dict]:
        return [
            {"action": "goto", "url": f"{self.site_url}/"},
            {"action": "fill", "selector": "input[name=q]", "text": term},
            {"action": "press", "selector": "input[name=q]", "key": "Enter"},
            {"action": "wait_for", "text": f"Results for {term}"},
            {"action": "expect_text", "text": f"Results for {term}"},
        ]

    def initiate_one(self) -> int | None:
        status, task = self.http.call("task create", "POST", "/tasks", {"task_name": "load"}, self.key)
        if status != 201:
            self.refused[f"create {status}"] += 1
            return None
        term = f"lamp {task['id']}"
        body = {"instruction": "search", "start_url": f"{self.site_url}/", "steps": self.steps(term)}
        status, _ = self.http.call("task initiate", "PATCH", f"/tasks/{task['id']}/initiate", body, self.key)
        if status != 202:
            self.refused[f"initiate {status}"] += 1
            return None
        self.started[task["id"]] = time.time()
        return task["id"]

    def in_flight(self) -> list[int]:
        return [task_id for task_id in self.started if task_id not in self.ended]

    def poll(self) -> None:
        for task_id in self.in_flight():
            status, task = self.http.call("task poll", "GET", f"/tasks/{task_id}", headers=self.key)
            if status == 200 and task["status"] in TERMINAL:
                self.ended[task_id] = {key: task.get(key) for key in ("status", "error", "run", "attempt")}

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            if self.creating.is_set():
                if self.depth and len(self.in_flight()) < self.depth:
                    self.initiate_one()
                elif not self.depth and time.monotonic() >= next_at:
                    self.initiate_one()
                    next_at += self.interval
            self.poll()
            self.stop_event.wait(1)

    def drain(self, timeout: float) -> None:
        """Stop creating and wait (up to `timeout` s) until every started task has ended."""
        self.creating.clear()
        deadline = time.monotonic() + timeout
        while self.in_flight() and time.monotonic() < deadline:
            time.sleep(1)
        self.stop_event.set()
        self.thread.join()
        self.poll()

    def summary(self) -> dict:
        statuses = Counter(state["status"] for state in self.ended.values())
        return {
            "started": len(self.started),
            "ended": len(self.ended),
            "not_ended": self.in_flight(),
            "by_status": dict(statuses),
            "errors": sorted({state["error"] for state in self.ended.values() if state["error"]}),
            "refused": dict(self.refused),
        }


@contextlib.contextmanager
def local_site():
    """The small test shop of tasks/tests/site_server.py, served from a thread."""
    sys.path.insert(0, str(ROOT))
    from tasks.tests.site_server import LocalSite

    with LocalSite() as site:
        yield site.base_url.rstrip("/")


# SAMPLES AND FIGURES
# ------------------------------------------------------------------------------


def server_processes(server, celery) -> dict[str, int]:
    """Label -> PID of every long-lived server process (Chromium, which lives one run, left out)."""
    found = {"gunicorn master": server.process.pid}
    for child in psutil.Process(server.process.pid).children():
        found[f"gunicorn worker {child.pid}"] = child.pid
    pids = celery.pids()
    if "worker" in pids:
        main, *pool = pids["worker"]
        found["celery worker"] = main
        for pid in pool:
            found[f"celery pool {pid}"] = pid
    if "beat" in pids:
        found["celery beat"] = pids["beat"][0]
    return found


def sample_rss(server, celery, *, probes: int = 10, spacing: float = 0.2) -> tuple[dict, dict]:
    """(lowest, highest) RSS in MB of each process over `probes` readings `spacing` s apart.

    A login holds Argon2's 100 MiB (Django's memory_cost) for the ~0.3 s of its hash, so one reading
    of a worker mid-login would look like a 100% leak; the lowest of a short burst is the memory the
    process keeps, and the highest shows what the hashes add."""
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    processes = server_processes(server, celery)
    for probe in range(probes):
        for label, pid in processes.items():
            with contextlib.suppress(psutil.Error):
                mb = psutil.Process(pid).memory_info().rss / 2**20
                low[label], high[label] = min(low.get(label, mb), mb), max(high.get(label, mb), mb)
        if probe < probes - 1:
            time.sleep(spacing)
    return low, high


def rounded(mapping: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 1) for key, value in mapping.items()}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def bucket_figures(events: list[tuple[float, str, int, float]], seconds: float) -> dict:
    """Throughput, p50/p99 (ms) and errors by status, overall and per endpoint, of one stretch of events."""
    per_endpoint: dict[str, list] = defaultdict(list)
    for _, endpoint, status, latency in events:
        per_endpoint[endpoint].append((status, latency))

    def figures(rows):
        latencies = [latency for status, latency in rows if status != NO_ANSWER]
        return {
            "requests": len(rows),
            "rps": round(len(rows) / seconds, 1),
            "p50_ms": round(percentile(latencies, 0.50), 1),
            "p99_ms": round(percentile(latencies, 0.99), 1),
        }

    result = {"all": figures([row for rows in per_endpoint.values() for row in rows]), "endpoints": {}}
    errors_total = 0
    for endpoint, rows in sorted(per_endpoint.items()):
        errors = Counter(str(status) for status, _ in rows if status not in EXPECTED[endpoint])
        errors_total += sum(errors.values())
        result["endpoints"][endpoint] = {**figures(rows), "errors": dict(errors)}
    result["all"]["errors"] = errors_total
    return result


def split_minutes(events, start: float, minutes: int, interval: float) -> list[list]:
    buckets = [[] for _ in range(minutes)]
    for event in events:
        index = int((event[0] - start) // interval)
        if 0 <= index < minutes:
            buckets[index].append(event)
    return buckets


def rss_growth(samples: list[dict], window: int) -> dict[str, dict]:
    """Per process: RSS `window` samples before the last one and at the last one, and the growth in %."""
    last = samples[-1]["rss_mb"]
    first = samples[max(0, len(samples) - 1 - window)]["rss_mb"]
    growth = {}
    for label, end in last.items():
        if label in first:
            growth[label] = {
                "from_mb": round(first[label], 1),
                "to_mb": round(end, 1),
                "growth_pct": round((end - first[label]) / first[label] * 100, 2),
            }
    return growth


def checks(report: dict) -> list[tuple[str, bool, str]]:
    minutes = report["minutes"]
    errors = sum(minute["all"]["errors"] for minute in minutes)
    first, last = minutes[0]["all"]["p99_ms"], minutes[-1]["all"]["p99_ms"]
    tasks = report["tasks"]
    worst = max(report["rss_growth"].items(), key=lambda item: item[1]["growth_pct"], default=("-", {"growth_pct": 0}))
    return [
        ("0 errors", errors == 0, f"{errors} errors in phase 2"),
        (
            "every task ended",
            not tasks["not_ended"],
            f"{tasks['ended']} of {tasks['started']} ended {tasks['by_status']}",
        ),
        ("p99 last minute <= 1.5 x first", last <= 1.5 * first, f"{first:.1f} ms -> {last:.1f} ms"),
        (
            f"RSS growth < 5% over the last {report['rss_window_minutes']} min",
            all(row["growth_pct"] < 5 for row in report["rss_growth"].values()),
            f"worst: {worst[0]} {worst[1]['growth_pct']:+.2f}%",
        ),
    ]


def write_chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [index + 1 for index in range(len(report["minutes"]))]
    figure, (throughput, p99, rss) = plt.subplots(3, 1, figsize=(10, 11), sharex=True)
    throughput.plot(minutes, [m["all"]["rps"] for m in report["minutes"]], marker="o", label="all")
    throughput.axhline(report["target_rps"], linestyle="--", color="grey", label="target")
    throughput.set_ylabel("requests/s")
    throughput.set_ylim(bottom=0)
    throughput.legend(loc="lower right")
    p99.plot(minutes, [m["all"]["p99_ms"] for m in report["minutes"]], marker="o", label="all", linewidth=2)
    endpoints = sorted({name for m in report["minutes"] for name in m["endpoints"]} - {"task poll"})
    for name in endpoints:
        p99.plot(
            minutes, [m["endpoints"].get(name, {}).get("p99_ms") for m in report["minutes"]], label=name, alpha=0.6
        )
    p99.set_ylabel("p99 (ms)")
    p99.set_ylim(bottom=0)
    p99.legend(fontsize="x-small", ncol=3, loc="upper left")
    samples = report["rss_samples"]
    for label in sorted({label for sample in samples for label in sample["rss_mb"]}):
        rss.plot(
            [sample["minute"] for sample in samples],
            [sample["rss_mb"].get(label) for sample in samples],
            marker=".",
            label=label,
        )
    rss.set_ylabel("RSS (MB)")
    rss.set_ylim(bottom=0)
    rss.set_xlabel("minute of the held load")
    rss.legend(fontsize="x-small", ncol=3, loc="upper left")
    figure.suptitle(
        f"Gatehouse soak {report['date']}: {report['fraction']:.0%} of peak ({report['peak_rps']:.0f} req/s), "
        f"{report['clients']} clients, {report['server']}",
        fontsize="medium",
    )
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def print_minute(index: int, figures: dict, rss: dict[str, float]) -> None:
    everything = figures["all"]
    errors = {name: row["errors"] for name, row in figures["endpoints"].items() if row["errors"]}
    print(
        f"minute {index + 1}: {everything['rps']:.1f} req/s, p50 {everything['p50_ms']:.1f} ms, "
        f"p99 {everything['p99_ms']:.1f} ms, errors {everything['errors']} {errors or ''}; "
        f"RSS {sum(rss.values()):.0f} MB in {len(rss)} processes",
        flush=True,
    )


# MAIN
# ------------------------------------------------------------------------------


def fresh_services() -> None:
    import psycopg
    import redis

    parts = urllib.parse.urlsplit(DATABASE_URL)
    admin = urllib.parse.urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')
    redis.Redis.from_url(REDIS_URL).flushdb()


def topology_env(var_dir: Path, database_url: str, redis_url: str, broker_url: str | None = None) -> dict[str, str]:
    """The server's (and Celery's) environment for a load run: production settings on these services."""
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": broker_url or redis_url,
        "VAR_DIR": str(var_dir),
        "LOG_FORMAT": "json",
        # The local site is on 127.0.0.1, which the egress policy refuses unless allowed (as scripts/smoke).
        "EGRESS_ALLOWLIST": "127.0.0.1",
        **throttle_env(),
    }
    if os.geteuid() == 0:  # Chromium's sandbox cannot start as root (as scripts/smoke)
        env["CHROMIUM_NO_SANDBOX"] = "true"
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="minutes of held load (phase 2)")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--fraction", type=float, default=0.8, help="share of the peak rate held in phase 2")
    parser.add_argument("--peak-seconds", type=float, default=45, help="length of the closed-loop peak (phase 1)")
    parser.add_argument("--tasks-per-minute", type=float, default=3, help="browser task runs started per minute")
    parser.add_argument("--interval", type=float, default=60, help="seconds per sample (a minute; shorter for a try)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory of the JSON report and the chart")
    options = parser.parse_args()

    var_dir = BENCH_VAR / "soak-var"
    shutil.rmtree(var_dir, ignore_errors=True)
    fresh_services()
    env = topology_env(var_dir, DATABASE_URL, REDIS_URL)
    minutes = max(1, round(options.duration * 60 / options.interval))
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(start_server(env, port=PORT))
        celery = stack.enter_context(start_celery(server.env, name="soak"))
        site_url = stack.enter_context(local_site())
        print(f"{server.description}; Celery worker + beat; site {site_url}", flush=True)
        accounts = make_accounts(server.base_url, options.clients + 1, "soak")
        tasks = TaskDriver(server.base_url, accounts[-1], site_url, interval=60 / options.tasks_per_minute)
        tasks.thread.start()

        print(f"phase 1: {options.clients} clients flat out for {options.peak_seconds:.0f} s", flush=True)
        peak_start = time.time() + 5
        peak_phases = [("closed", options.peak_seconds, 0)]
        peak_load = start_load(server.base_url, accounts[:-1], peak_phases, start_at=peak_start)
        peak_load.join()
        warm = 2  # new connections, first requests of each worker
        peak_events = [event for event in peak_load.events if event[0] >= peak_start + warm]
        peak = bucket_figures(peak_events, options.peak_seconds - warm)
        peak_rps = peak["all"]["rps"]
        target = options.fraction * peak_rps
        print(
            f"peak: {peak_rps:.1f} req/s (p50 {peak['all']['p50_ms']:.1f} ms, p99 {peak['all']['p99_ms']:.1f} ms, "
            f"{peak['all']['errors']} errors); phase 2: {target:.1f} req/s for {minutes} x {options.interval:.0f} s",
            flush=True,
        )

        held_seconds = minutes * options.interval
        phase_start = time.time() + 5
        phases = [("open", held_seconds, target / options.clients)]
        held = start_load(server.base_url, accounts[:-1], phases, start_at=phase_start, seed=1017)
        samples = []
        for index in range(minutes + 1):
            time.sleep(max(0, phase_start + index * options.interval - time.time()))
            low, high = sample_rss(server, celery)
            samples.append({"minute": index, "rss_mb": low, "rss_peak_mb": high})
            if index:
                time.sleep(1.5)  # the clients report every second
                so_far = held.events + list(tasks.http.events)
                stretch = split_minutes(so_far, phase_start, minutes, options.interval)[index - 1]
                print_minute(index - 1, bucket_figures(stretch, options.interval), low)
        held.join()
        tasks.drain(timeout=180)
        description = server.description
        tasks_summary = tasks.summary()
        task_events = tasks.http.take_events()

    events = held.events + [event for event in task_events if event[0] >= phase_start]
    window = min(5, minutes)
    date = datetime.date.today().isoformat()
    report = {
        "date": date,
        "server": description,
        "clients": options.clients,
        "fraction": options.fraction,
        "interval_s": options.interval,
        "mix": MIX,
        "tasks_per_minute": options.tasks_per_minute,
        "throttles": "every THROTTLE_*_RATE set to 1000000/min",
        "peak_rps": peak_rps,
        "peak": peak,
        "target_rps": round(target, 1),
        "minutes": [
            bucket_figures(stretch, options.interval)
            for stretch in split_minutes(events, phase_start, minutes, options.interval)
        ],
        "rss_samples": [
            {"minute": sample["minute"], **{kind: rounded(sample[kind]) for kind in ("rss_mb", "rss_peak_mb")}}
            for sample in samples
        ],
        "rss_window_minutes": window * options.interval / 60,
        "rss_growth": rss_growth(samples, window),
        "tasks": tasks_summary,
        "load_average": os.getloadavg(),
    }
    results = checks(report)
    report["checks"] = [{"check": name, "passed": ok, "detail": detail} for name, ok, detail in results]
    options.out.mkdir(parents=True, exist_ok=True)
    json_path, chart_path = options.out / f"soak-{date}.json", options.out / f"soak-{date}.png"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    write_chart(report, chart_path)
    shutil.copyfile(chart_path, options.out / "soak-latest.png")

    rows = [
        [name, row["requests"], row["rps"], row["p50_ms"], row["p99_ms"], row["errors"] or ""]
        for name, row in bucket_figures(events, held_seconds)["endpoints"].items()
    ]
    print()
    print(format_table(["endpoint (phase 2)", "requests", "req/s", "p50 ms", "p99 ms", "errors"], rows))
    growth = [
        [label, row["from_mb"], row["to_mb"], f"{row['growth_pct']:+.2f}%"]
        for label, row in report["rss_growth"].items()
    ]
    print()
    print(
        format_table([f"process (last {report['rss_window_minutes']:g} min)", "RSS from MB", "to MB", "growth"], growth)
    )
    print()
    for name, ok, detail in results:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    print(f"\nreport: {json_path}\nchart:  {chart_path} (and soak-latest.png)")
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
