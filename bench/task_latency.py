#!/usr/bin/env python
"""Measure how fast a browser task gets going: initiate -> running (p50 over N runs), and a 5-step run.

Starts its own Celery worker (prefork, one process) and the local test website, creates a
throw-away user, and drives runs through tasks.services exactly as the API's initiate does.
Needs a migrated database and a broker; the figures in docs/tasks.md used:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/gh_tasks \
    CELERY_BROKER_URL=redis://127.0.0.1:6379/7 .venv/bin/python bench/task_latency.py --runs 20

"initiate -> running" is started_at - queued_at from the task row: the commit, the message
to the broker, the worker receiving it and claiming the run. Each run waits for the previous
one to finish, so it measures an idle worker's latency, not a queue.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

import django  # noqa: E402

django.setup()

from accounts.models import User  # noqa: E402
from tasks import services  # noqa: E402
from tasks.models import Task  # noqa: E402
from tasks.tests.site_server import LocalSite  # noqa: E402

FINISHED = ("completed", "failed", "cancelled")


def wait_finished(task_id: int, timeout: float = 120) -> Task:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = Task.objects.get(pk=task_id)
        if task.status in FINISHED:
            return task
        time.sleep(0.05)
    raise SystemExit(f"task {task_id} did not finish within {timeout}s (is the worker running?)")


def start_worker(log_path: Path) -> subprocess.Popen:
    celery = Path(sys.executable).with_name("celery")
    log = open(log_path, "wb")  # noqa: SIM115 -- lives as long as the worker
    worker = subprocess.Popen(  # noqa: S603 -- our own celery, fixed arguments
        [str(celery), "-A", "config", "worker", "--pool=prefork", "--concurrency=1", "--loglevel=INFO"],
        cwd=BASE_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while " ready." not in log_path.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the worker did not start; see {log_path}")
        time.sleep(0.2)
    return worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs for the initiate -> running figure")
    parser.add_argument("--five-step-runs", type=int, default=3, help="repetitions of the 5-step run")
    parser.add_argument("--no-worker", action="store_true", help="use a worker that is already running")
    args = parser.parse_args()

    from django.conf import settings

    print(f"broker: {settings.CELERY_BROKER_URL}  database: {settings.DATABASES['default']['ENGINE']}")
    worker = None if args.no_worker else start_worker(Path(tempfile.mkdtemp()) / "worker.log")
    user = User.objects.create_user(username=f"bench-{uuid.uuid4().hex[:8]}", password=uuid.uuid4().hex)
    try:
        with LocalSite() as site:
            one_step = [{"action": "goto", "url": site.url("/")}]
            latencies = []
            for _ in range(args.runs):
                task = services.task_create(owner=user, task_name="latency")
                services.task_initiate(task=task, instruction="bench", steps=one_step)
                done = wait_finished(task.pk)
                latencies.append((done.started_at - done.queued_at).total_seconds() * 1000)
            print(
                f"initiate -> running over {len(latencies)} runs: p50 {statistics.median(latencies):.0f} ms, "
                f"min {min(latencies):.0f} ms, max {max(latencies):.0f} ms"
            )

            five_steps = [
                {"action": "goto", "url": site.url("/")},
                {"action": "fill", "selector": "@search-box", "text": "garden lamp"},
                {"action": "press", "selector": "@search-box", "key": "Enter"},
                {"action": "wait_for", "text": "Results for garden lamp"},
                {"action": "expect_text", "text": "garden lamp deluxe"},
            ]
            runs, totals = [], []
            for _ in range(args.five_step_runs):
                task = services.task_create(owner=user, task_name="five steps")
                started = time.monotonic()
                services.task_initiate(task=task, instruction="bench", steps=five_steps)
                done = wait_finished(task.pk)
                totals.append(time.monotonic() - started)
                assert done.status == "completed", done.error
                runs.append((done.finished_at - done.started_at).total_seconds())
            print(
                f"5-step run (browser start, 5 steps, GIF + script + history stored), median of {len(runs)}: "
                f"{statistics.median(runs):.2f} s running, {statistics.median(totals):.2f} s initiate -> completed"
            )
    finally:
        for task in Task.objects.filter(owner=user):
            services.task_delete(task=task)
        user.delete()
        if worker is not None:
            os.killpg(worker.pid, 15)
            worker.wait(30)


if __name__ == "__main__":
    main()
