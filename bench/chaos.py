"""Chaos: the production topology under a moderate load while its parts are killed, restarted and stopped.

    .venv/bin/python bench/chaos.py [--only worker-kill,pg-restart,redis-stop,web-worker-kill]
                                    [--kills 20] [--clients 2] [--rate 10] [--out bench/results]

Runs on a PostgreSQL cluster and a Redis server of its own, so that it may restart and stop them:
`initdb` into var/bench/pg-chaos (kept between runs, as the postgres user when run as root) started
with pg_ctl on 127.0.0.1:55433 (database `gatehouse_chaos`, made afresh), and `redis-server` on
127.0.0.1:63791 without persistence (DB 0 cache, DB 1 broker). Each experiment starts gunicorn with
production settings (harness.start_server, port CHAOS_PORT, 8791), a Celery worker and beat
(harness.start_celery), the local test shop for browser tasks, and --clients load processes of
bench/soak.py's mix, each at --rate requests/s (open loop). Then:

worker-kill       SIGKILLs the Celery worker's process group --kills times, each at a random point of a
                  running browser task, and restarts it; then waits until every task has ended. Passes
                  when none is lost (still queued or running), no run has two results or two charges and
                  no result file is orphaned, and each killed run went as docs/tasks.md says: started
                  again while attempts remain (TASK_MAX_ATTEMPTS, 2), else failed as "stopped responding".
pg-restart        stops PostgreSQL (pg_ctl -m fast), waits 5 s, starts it. Passes when no request got a
                  500 (or no answer) during or after, the service answers as before within 10 s of the
                  database's return, and gunicorn's master is the same process.
redis-stop        stops Redis for 10 s. Passes when the authenticated, unthrottled requests keep their
                  expected status, nothing answers 500 (the throttled login and refresh may answer 503
                  or 429: fail closed), /health answers 503 naming the cache, an initiate is accepted (202:
                  the run is held, docs/tasks.md) and completes once Redis is back, and the service
                  recovers within 10 s.
web-worker-kill   SIGKILLs a gunicorn worker while it runs a request. Passes when clients saw at most one
                  failed request and the posts agree with the answers: each post answered 201 exists, and
                  at most one exists that got no answer (the request in flight).

To keep the experiment short the heartbeat and sweeper are quickened (TASK_HEARTBEAT_TIMEOUT=15,
TASK_SWEEP_INTERVAL=5, TASK_QUEUE_RESEND_AFTER=20) and the throttles raised as in bench/soak.py.
Counts go to chaos-<date>.json under --out; exit status 0 only when every selected experiment passed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import psycopg
from harness import BENCH_VAR, http_json, start_celery, start_server
from soak import EXPECTED, NO_ANSWER, RESULTS, TaskDriver, local_site, make_accounts, start_load, topology_env

PORT = int(os.environ.get("CHAOS_PORT", 8791))
PG_PORT, REDIS_PORT = 55433, 63791
PG_DATA = BENCH_VAR / "pg-chaos"
DATABASE_URL = f"postgres://postgres@127.0.0.1:{PG_PORT}/gatehouse_chaos"
CACHE_URL, BROKER_URL = f"redis://127.0.0.1:{REDIS_PORT}/0", f"redis://127.0.0.1:{REDIS_PORT}/1"
QUICK_SWEEPER = {"TASK_HEARTBEAT_TIMEOUT": "15", "TASK_SWEEP_INTERVAL": "5", "TASK_QUEUE_RESEND_AFTER": "20"}
MAX_ATTEMPTS = 2  # TASK_MAX_ATTEMPTS's default, which the run keeps
RECOVERY_LIMIT = 10  # seconds, issue 17
THROTTLED = {"login", "refresh", "logout"}  # endpoints behind a Redis-backed throttle or the revocation cache
EXPERIMENTS = ("worker-kill", "pg-restart", "redis-stop", "web-worker-kill")


# PRIVATE SERVICES
# ------------------------------------------------------------------------------


class PrivatePostgres:
    """A PostgreSQL cluster of this script's own (the machine's server is shared and is never touched)."""

    def __init__(self, data_dir: Path, port: int):
        self.data_dir, self.port = data_dir, port
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not found:
            raise SystemExit("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
        self.bin = Path(found[-1]).parent

    def _run(self, tool: str, *args: str) -> None:
        # PostgreSQL refuses to run as root: the cluster belongs to the postgres user then.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, str(self.bin / tool), *args], capture_output=True, text=True)  # noqa: S603
        if done.returncode:
            raise SystemExit(f"{tool} {' '.join(args)} failed: {done.stdout}{done.stderr}")

    def ensure(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir}"
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.data_dir / "server.log"), "-o", options, "-w", "start"
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def fresh_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class PrivateRedis:
    """redis-server on a port of this script's own, without persistence: a restart comes back empty."""

    def __init__(self, port: int):
        self.port, self.process = port, None
        self.log_path = BENCH_VAR / f"redis-{port}.log"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        import redis

        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(redis.RedisError):
                if redis.Redis(port=self.port).ping():
                    return
            if time.monotonic() > deadline:
                raise SystemExit(f"redis-server on {self.port} did not start; see {self.log_path}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


# ONE EXPERIMENT'S TOPOLOGY
# ------------------------------------------------------------------------------


class Run:
    """The server, Celery, local site and accounts of one experiment."""

    def __init__(self, stack: contextlib.ExitStack, options, name: str):
        var_dir = BENCH_VAR / "chaos-var"
        shutil.rmtree(var_dir, ignore_errors=True)
        env = {**topology_env(var_dir, DATABASE_URL, CACHE_URL, BROKER_URL), **QUICK_SWEEPER}
        self.media = var_dir / "media"
        self.server = stack.enter_context(start_server(env, port=PORT))
        self.celery = stack.enter_context(start_celery(self.server.env, name=f"chaos-{name}"))
        self.site_url = stack.enter_context(local_site())
        self.accounts = make_accounts(self.server.base_url, options.clients + 1, name.replace("-", ""))
        self.options, self.name = options, name

    def load(self, seconds: float = 3600, *, mode: str = "open"):
        """--clients processes of the soak's mix at --rate each (or flat out), from 3 s from now."""
        rate = self.options.rate if mode == "open" else 0
        label = f"{self.name.replace('-', '')}{int(time.time())}c"
        start_at = time.time() + 3
        load = start_load(
            self.server.base_url, self.accounts[:-1], [(mode, seconds, rate)], start_at=start_at, label=label
        )
        time.sleep(max(0, start_at - time.time()))
        return load

    def tasks(self, **kwargs) -> TaskDriver:
        return TaskDriver(self.server.base_url, self.accounts[-1], self.site_url, **kwargs)

    def gunicorn_pids(self) -> tuple[int, set[int]]:
        master = self.server.process.pid
        return master, {child.pid for child in psutil.Process(master).children()}

    def sql(self, query: str, params=()) -> list[tuple]:
        with psycopg.connect(DATABASE_URL.replace("postgres://", "postgresql://", 1), autocommit=True) as connection:
            return connection.execute(query, params).fetchall()


def unexpected(event) -> bool:
    return event[2] not in EXPECTED[event[1]]


def by_status(events) -> dict[str, int]:
    return dict(Counter(str(event[2]) for event in events))


def by_endpoint(events) -> dict[str, dict[str, int]]:
    table: dict[str, Counter] = {}
    for _, endpoint, status, _ in events:
        table.setdefault(endpoint, Counter())[str(status)] += 1
    return {name: dict(counts) for name, counts in sorted(table.items())}


def recovery(events, back_at: float) -> dict:
    """From the service's return: seconds to the first 2xx, and to the last unexpected answer (steady after)."""
    after = sorted(event for event in events if event[0] >= back_at)
    first_ok = next((event[0] for event in after if 200 <= event[2] < 300), None)
    bad = [event[0] for event in after if unexpected(event)]
    return {
        "first_2xx_s": round(first_ok - back_at, 2) if first_ok is not None else None,
        "steady_s": round(max(bad) - back_at, 2) if bad else 0.0,
        "requests_after": len(after),
        "unexpected_after": len(bad),
    }


def server_errors(events) -> int:
    """Answers that must never happen: a 5xx other than 503, or no answer at all."""
    return sum(1 for event in events if event[2] == NO_ANSWER or (event[2] >= 500 and event[2] != 503))


# THE EXPERIMENTS
# ------------------------------------------------------------------------------


def worker_kill(run: Run, pg, redis_server) -> dict:
    driver = run.tasks(depth=2)
    driver.thread.start()
    load = run.load()
    killed: dict[int, set[int]] = {}  # task id -> attempts that were killed
    kills, rng = [], random.Random(17)  # noqa: S311 (when to kill, not a secret)
    while len(kills) < run.options.kills:
        if not wait_for_running(run, killed, timeout=120):
            break
        time.sleep(rng.uniform(0.3, 4.0))
        running = live_runs(run, killed)
        if not running:
            continue
        run.celery.kill_worker()
        # A run that finished between the look and the kill was not killed.
        still = live_runs(run, killed)
        hit = {task_id: attempt for task_id, attempt in running.items() if still.get(task_id) == attempt}
        for task_id, attempt in hit.items():
            killed.setdefault(task_id, set()).add(attempt)
        kills.append({"at": time.time(), "running": hit})
        print(f"  kill {len(kills)}: runs {hit or 'none (finished first)'}", flush=True)
        run.celery.start_worker()
    driver.drain(timeout=240)
    load.stop()
    return judge_worker_kill(run, driver, killed, kills, load)


def live_runs(run: Run, killed: dict[int, set[int]]) -> dict[int, int]:
    """Task id -> attempt of the runs `running` now, less those already killed (still `running` in the
    database until their heartbeat goes stale)."""
    rows = run.sql("SELECT id, attempt FROM tasks_task WHERE status = 'running'")
    return {task_id: attempt for task_id, attempt in rows if attempt not in killed.get(task_id, ())}


def wait_for_running(run: Run, killed: dict[int, set[int]], timeout: float) -> dict[int, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = live_runs(run, killed)
        if running:
            return running
        time.sleep(0.2)
    return {}


def judge_worker_kill(run: Run, driver: TaskDriver, killed: dict, kills: list, load) -> dict:
    ids = list(driver.started)
    rows = run.sql(
        "SELECT t.id, t.status, t.run_number, t.attempt, t.error, r.run_number,"
        " (SELECT count(*) FROM tasks_runcharge c WHERE c.task_id = t.id AND c.run_number = t.run_number)"
        " FROM tasks_task t LEFT JOIN results_result r ON r.task_id = t.id WHERE t.id = ANY(%s)",
        [ids],
    )
    outcome = Counter()
    duplicated, mismatched = [], []
    for task_id, status, run_number, attempt, error, result_run, charges in rows:
        if charges != 1 or (result_run is not None and result_run != run_number):
            duplicated.append({"task": task_id, "charges": charges, "result_run": result_run, "run": run_number})
        hits = len(killed.get(task_id, ()))
        if not hits:
            outcome[f"not killed, {status}"] += 1
            continue
        if hits >= MAX_ATTEMPTS:
            expected_ok = status == "failed" and "stopped responding" in error
            outcome["killed, failed (attempts spent)" if expected_ok else f"killed {hits}x, {status}"] += 1
        else:
            expected_ok = status == "completed" and attempt == hits + 1
            outcome["killed, retried and completed" if expected_ok else f"killed {hits}x, {status}"] += 1
        if not expected_ok:
            mismatched.append({"task": task_id, "kills": hits, "status": status, "attempt": attempt, "error": error})
    orphans = orphan_files(run)
    summary = driver.summary()
    result = {
        "kills": len(kills),
        "tasks_started": summary["started"],
        "tasks_ended": summary["ended"],
        "lost": summary["not_ended"],
        "duplicated": duplicated,
        "orphan_files": orphans,
        "killed_runs": sum(len(attempts) for attempts in killed.values()),
        "outcomes": dict(outcome),
        "not_as_documented": mismatched,
        "initiates_refused": summary["refused"],
        "http_statuses": by_endpoint(load.events),
    }
    result["passed"] = (
        not (summary["not_ended"] or duplicated or orphans or mismatched) and len(kills) == run.options.kills
    )
    return result


def orphan_files(run: Run) -> list[str]:
    """Files under the media directory that neither a result nor the deletion journal knows."""
    known = {name for (name,) in run.sql("SELECT name FROM results_resultfile")}
    known |= {name for (name,) in run.sql("SELECT name FROM results_pendingfiledeletion")}
    on_disk = {str(path.relative_to(run.media)) for path in run.media.rglob("*") if path.is_file()}
    return sorted(on_disk - known)


def pg_restart(run: Run, pg: PrivatePostgres, redis_server) -> dict:
    master, workers = run.gunicorn_pids()
    load = run.load()
    time.sleep(10)
    down_at = time.time()
    pg.stop()
    time.sleep(5)
    pg.start()
    back_at = time.time()
    time.sleep(30)
    load.stop()
    health = http_json("GET", run.server.url("/health"))
    now_master, now_workers = run.gunicorn_pids()
    outage = [event for event in load.events if down_at <= event[0] < back_at]
    result = {
        "outage_s": round(back_at - down_at, 1),
        "during_outage": by_status(outage),
        "during_outage_by_endpoint": by_endpoint(outage),
        "server_errors": server_errors(load.events),
        "recovery": recovery(load.events, back_at),
        "gunicorn_master_same": now_master == master,
        "gunicorn_workers_replaced": len(workers - now_workers),
        "health_after": health,
        "celery_worker_alive": run.celery.worker.poll() is None,
    }
    result["passed"] = (
        not result["server_errors"]
        and result["recovery"]["steady_s"] <= RECOVERY_LIMIT
        and result["gunicorn_master_same"]
        and health[0] == 200
    )
    return result


def redis_stop(run: Run, pg, redis_server: PrivateRedis) -> dict:
    key = {"X-API-Key": run.accounts[-1].api_key}
    status, task = http_json("POST", run.server.url("/api/v1/tasks"), body={"task_name": "outage"}, headers=key)
    if status != 201:
        raise SystemExit(f"create a task before the outage: HTTP {status}: {task}")
    load = run.load()
    time.sleep(10)
    down_at = time.time()
    redis_server.stop()
    time.sleep(3)
    health = http_json("GET", run.server.url("/health"))
    steps = [{"action": "goto", "url": f"{run.site_url}/"}]
    initiate = http_json(
        "PATCH",
        run.server.url(f"/api/v1/tasks/{task['id']}/initiate"),
        body={"instruction": "during the outage", "steps": steps},
        headers=key,
    )
    time.sleep(max(0, down_at + 10 - time.time()))
    redis_server.start()
    back_at = time.time()
    time.sleep(30)
    load.stop()
    final = wait_not_queued(run, task["id"], key, timeout=120)
    outage = [event for event in load.events if down_at <= event[0] < back_at]
    kept = [event for event in outage if event[1] not in THROTTLED]
    throttled = [event for event in outage if event[1] in THROTTLED]
    health_body = health[1] if isinstance(health[1], dict) else {}
    result = {
        "outage_s": round(back_at - down_at, 1),
        "during_outage": by_status(outage),
        "during_outage_by_endpoint": by_endpoint(outage),
        "unthrottled_unexpected": sum(1 for event in kept if unexpected(event)),
        "throttled_statuses": by_status(throttled),
        "server_errors": server_errors(load.events),
        "health_during": {"status": health[0], "body": health[1]},
        "initiate_during": {"status": initiate[0], "body": initiate[1]},
        "task_after_return": final,
        "recovery": recovery(load.events, back_at),
    }
    cache_reported_down = health[0] == 503 and health_body.get("checks", {}).get("cache", "ok") != "ok"
    result["passed"] = (
        not result["unthrottled_unexpected"]
        and not result["server_errors"]
        and all(event[2] in EXPECTED[event[1]] | {503, 429} for event in throttled)
        and cache_reported_down
        and initiate[0] == 202
        and final.get("status") == "completed"
        and result["recovery"]["steady_s"] <= RECOVERY_LIMIT
    )
    return result


def wait_not_queued(run: Run, task_id: int, key: dict, timeout: float) -> dict:
    """The task's state once it is neither queued nor running (or as it is after `timeout`)."""
    deadline = time.monotonic() + timeout
    state: dict = {}
    while time.monotonic() < deadline:
        status, state = http_json("GET", run.server.url(f"/api/v1/tasks/{task_id}"), headers=key)
        if status == 200 and state["status"] not in ("queued", "running"):
            break
        time.sleep(1)
    return {key_: state.get(key_) for key_ in ("status", "error", "run", "attempt")} if isinstance(state, dict) else {}


def web_worker_kill(run: Run, pg, redis_server) -> dict:
    load = run.load(25, mode="closed")
    time.sleep(8)
    master, workers = run.gunicorn_pids()
    victim = busy_worker(workers, timeout=5)
    killed_at = time.time()
    if victim is not None:
        os.kill(victim, signal.SIGKILL)
    load.join()
    markers = {marker: status for finished in load.finished for marker, status in finished["posts"]}
    answered = {marker for marker, status in markers.items() if status == 201}
    rows = run.sql("SELECT content FROM posts_post WHERE content LIKE %s", [f"load post {load.label}%"])
    stored = {content.removeprefix("load post ") for (content,) in rows}
    failed = [event for event in load.events if event[2] == NO_ANSWER or event[2] >= 500]
    result = {
        "killed_worker": victim,
        "killed_at_s": round(killed_at - min(event[0] for event in load.events), 1) if load.events else None,
        "requests": len(load.events),
        "failed_requests": by_endpoint(failed),
        "failed_count": len(failed),
        "posts_answered_201": len(answered),
        "posts_stored": len(stored),
        "answered_but_missing": sorted(answered - stored),
        "stored_without_answer": sorted(stored - answered),
        "workers_after": len(run.gunicorn_pids()[1]),
    }
    result["passed"] = (
        victim is not None
        and len(failed) <= 1
        and not result["answered_but_missing"]
        and len(result["stored_without_answer"]) <= 1
        and set(result["stored_without_answer"]) <= {marker for marker, status in markers.items() if status != 201}
    )
    return result


def busy_worker(workers: set[int], timeout: float) -> int | None:
    """A worker the kernel shows running (on a CPU: in a request, not waiting for one), else any after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in workers:
            with contextlib.suppress(psutil.Error):
                if psutil.Process(pid).status() == psutil.STATUS_RUNNING:
                    return pid
        time.sleep(0.005)
    return next(iter(workers), None)


RUNNERS = {
    "worker-kill": worker_kill,
    "pg-restart": pg_restart,
    "redis-stop": redis_stop,
    "web-worker-kill": web_worker_kill,
}


# MAIN
# ------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(EXPERIMENTS), help="comma-separated experiments to run")
    parser.add_argument("--kills", type=int, default=20, help="worker-kill: how many SIGKILLs")
    parser.add_argument("--clients", type=int, default=2, help="load client processes")
    parser.add_argument("--rate", type=float, default=10, help="requests/s of each client (open loop)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory of the JSON report")
    options = parser.parse_args()
    selected = [name.strip() for name in options.only.split(",") if name.strip()]
    unknown = set(selected) - set(EXPERIMENTS)
    if unknown:
        parser.error(f"unknown experiment(s) {sorted(unknown)}; choose from {', '.join(EXPERIMENTS)}")

    BENCH_VAR.mkdir(parents=True, exist_ok=True)
    pg, redis_server = PrivatePostgres(PG_DATA, PG_PORT), PrivateRedis(REDIS_PORT)
    report = {"date": datetime.date.today().isoformat(), "options": vars(options) | {"out": str(options.out)}}
    with contextlib.ExitStack() as services:
        pg.ensure()
        pg.start()
        services.callback(pg.stop)
        redis_server.start()
        services.callback(redis_server.stop)
        pg.fresh_database(DATABASE_URL)
        for name in selected:
            print(f"{name}:", flush=True)
            started = time.monotonic()
            with contextlib.ExitStack() as stack:
                run = Run(stack, options, name)
                result = RUNNERS[name](run, pg, redis_server)
            result["seconds"] = round(time.monotonic() - started)
            report[name] = result
            print(json.dumps(result, indent=2, default=str), flush=True)
            print(f"{name}: {'PASS' if result['passed'] else 'FAIL'}\n", flush=True)
    options.out.mkdir(parents=True, exist_ok=True)
    path = options.out / f"chaos-{report['date']}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    for name in selected:
        print(f"{'PASS' if report[name]['passed'] else 'FAIL'}  {name}")
    print(f"report: {path}")
    return 0 if all(report[name]["passed"] for name in selected) else 1


if __name__ == "__main__":
    sys.exit(main())
