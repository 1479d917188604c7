"""Fixtures with real Celery worker and beat processes, for the tasks and results tests.

A pytest plugin (the root conftest.py lists it in `pytest_plugins`), so every app's tests
can ask for `start_worker` and `start_beat` by name, without importing this module.

A worker is a real `celery -A config worker` subprocess (prefork pool) pointed at the
pytest-created test database; the test must use `django_db(transaction=True)` so the
rows it writes are committed where the worker can see them, and carry the `worker`
marker (conftest skips it without PostgreSQL and a Redis broker).
"""

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tasks.tests.factories import wait_until

BASE_DIR = Path(settings.BASE_DIR)


def _celery_command() -> list[str]:
    script = Path(sys.executable).with_name("celery")
    return [str(script)] if script.exists() else [sys.executable, "-m", "celery"]


def _database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class CeleryProcess:
    """A celery worker or beat subprocess in its own process group; its output goes to a log file."""

    def __init__(self, *, args: list[str], env: dict, log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 -- closed in stop()
        self.process = subprocess.Popen(
            [*_celery_command(), "-A", "config", *args],
            cwd=BASE_DIR,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def count(self, text: str) -> int:
        return self.log().count(text)

    def wait_for_log(self, text: str, *, timeout: float = 60) -> None:
        def seen():
            if self.process.poll() is not None:
                pytest.fail(f"celery exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            return text in self.log()

        wait_until(seen, timeout=timeout, what=f"{text!r} in {self.log_path}")

    def kill(self) -> None:
        """SIGKILL the whole process group (main process and pool children), as an OOM killer would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log.close()


@pytest.fixture
def celery_env(media_root, transactional_db):
    """Environment for worker and beat subprocesses: the test database, this test's media, the Redis broker."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "SECRET_KEY": settings.SECRET_KEY,
        "VAR_DIR": str(media_root.parent),
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def start_worker(celery_env, media_root):
    """Start a real Celery worker (and stop it after the test): `start_worker(concurrency=1, **env)`."""
    from config.celery import app

    app.control.purge()  # messages of earlier tests must not reach this test's worker
    started: list[CeleryProcess] = []

    def start(*, concurrency: int = 1, **env_overrides: str) -> CeleryProcess:
        name = f"test-{uuid.uuid4().hex[:8]}@%h"
        args = ["worker", "--pool=prefork", f"--concurrency={concurrency}", "--loglevel=INFO", "-n", name]
        args += ["--without-mingle", "--without-gossip"]
        # An expected text that is absent costs a whole step timeout (in the replay script too).
        env = {"TASK_STEP_TIMEOUT_MS": "4000", **env_overrides}
        worker = CeleryProcess(
            args=args,
            env={**celery_env, **env},
            log_path=media_root.parent / f"worker-{len(started)}.log",
        )
        started.append(worker)
        worker.wait_for_log(" ready.")
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def start_beat(celery_env, media_root):
    """Start celery beat (schedule file in this test's VAR_DIR): `start_beat(**env)`."""
    started: list[CeleryProcess] = []

    def start(**env_overrides: str) -> CeleryProcess:
        beat = CeleryProcess(
            args=["beat", "--loglevel=INFO"],
            env={**celery_env, **env_overrides},
            log_path=media_root.parent / "beat.log",
        )
        started.append(beat)
        beat.wait_for_log("beat: Starting")
        return beat

    yield start
    for beat in started:
        beat.stop()


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process under `pid`, from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            parents[int(entry)] = int(stat[stat.rfind(b")") + 2 :].split()[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for child, child_parent in parents.items():
            if child_parent == parent:
                frontier.append(child)
                try:
                    cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    cmdline = ""
                found.append((child, cmdline))
    return found
