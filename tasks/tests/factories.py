"""Builders and helpers shared by the tests that involve tasks (the tasks and results apps).

- `TaskFactory`: a task in `created` state;
- `record_result`: a finished run with real files in storage, made through the services as
  the worker would make it (with `report_for`, the runner's real output type filled in);
- the HTTP helpers of the end-to-end tests (`create_task`, `initiate`, `wait_for_status`, `fetch`);
- the runner's browser tests' options and checks (`FAST`, `statuses`, `chromium_descendants`...).
"""

import io
import os
import time
from collections.abc import Callable

import factory
import pytest
from django.conf import settings
from PIL import Image

from accounts.tests.factories import UserFactory
from results.models import Result
from tasks import runner, services
from tasks.models import Task
from tasks.runner.processes import descendants_of

SITE = "http://shop.example.test/"
STEPS = [{"action": "goto", "url": SITE}, {"action": "expect_text", "text": "Welcome"}]
FINISHED = {"completed", "failed", "cancelled"}


class TaskFactory(factory.django.DjangoModelFactory):
    """A task in `created` state. Runs are started through tasks.services, never by setting fields."""

    class Meta:
        model = Task

    owner = factory.SubFactory(UserFactory)
    task_name = factory.Sequence(lambda n: f"Task {n}")


# RUNS THROUGH THE SERVICES
# ------------------------------------------------------------------------------


def png(colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def report_for(claim, *, seen=True, error="") -> runner.RunReport:
    """What the runner returns for STEPS (its real output type, filled in as a run would)."""
    history = [
        runner.StepRecord(index=0, action="goto", args={"url": SITE}, status="ok", duration_ms=120, url=SITE),
        runner.StepRecord(
            index=1,
            action="expect_text",
            args={"text": "Welcome"},
            status="failed" if error else "ok",
            duration_ms=30,
            error=error,
            url=SITE,
        ),
    ]
    return runner.RunReport(
        steps=claim.steps, history=history, frames=[png("red"), png("blue")], expectation_met=seen, error=error
    )


def artifacts_for(claim) -> dict[str, bytes]:
    """The files the worker renders for `report_for(claim)`, by kind."""
    report = report_for(claim)
    return runner.render_artifacts(
        task_id=claim.task_id,
        run_number=claim.run_number,
        report=report,
        options=claim.options,
        expected_status=claim.expected_status,
    ).files


def record_result(task: Task, *, seen=True, error="", expected_status="success") -> Result:
    """Initiate, claim and finish a run of `task` as the worker would, with real files in storage."""
    services.task_initiate(task=task, instruction="check", steps=STEPS, expected_status=expected_status)
    claim = services.task_run_claim(task_id=task.pk, run_number=Task.objects.get(pk=task.pk).run_number)
    assert services.task_run_record(claim=claim, report=report_for(claim, seen=seen, error=error), error=error)
    return Result.objects.get(task=task)


# END TO END, THROUGH THE API
# ------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], object], *, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def create_task(client, name="Shop search") -> int:
    response = client.post("/api/v1/tasks", {"task_name": name}, format="json")
    assert response.status_code == 201
    return response.json()["id"]


def initiate(client, task_id, payload) -> dict:
    response = client.patch(f"/api/v1/tasks/{task_id}/initiate", {"instruction": "check", **payload}, format="json")
    assert response.status_code == 202, response.content
    return response.json()


def wait_for_status(client, task_id, statuses, timeout=90) -> dict:
    def current():
        body = client.get(f"/api/v1/tasks/{task_id}").json()
        return body if body["status"] in statuses else None

    return wait_until(current, timeout=timeout, interval=0.25, what=f"task {task_id} to be {statuses}")


def fetch(client, url) -> bytes:
    response = client.get(url)
    assert response.status_code == 200, url
    return b"".join(response.streaming_content)


# THE RUNNER IN A REAL CHROMIUM
# ------------------------------------------------------------------------------


# The egress proxy refuses loopback addresses; the local test sites (site_server.py) are on 127.0.0.1.
LOCAL_SITES = ("127.0.0.1",)


def browser_options(**fields) -> runner.BrowserOptions:
    """BrowserOptions for the runner's browser tests: the local test sites allowed, and the sandbox as
    the test settings decide (CHROMIUM_NO_SANDBOX: off only for a root test process, where it cannot start)."""
    defaults = {"no_sandbox": settings.CHROMIUM_NO_SANDBOX, "egress_allowlist": LOCAL_SITES}
    return runner.BrowserOptions(**{**defaults, **fields})


def script_environment() -> dict[str, str]:
    """The environment a replay script runs with in the tests: the sandbox as the test settings decide."""
    return {**os.environ, "CHROMIUM_NO_SANDBOX": "true" if settings.CHROMIUM_NO_SANDBOX else "false"}


FAST = browser_options(width=800, height=600, step_timeout_ms=3_000, navigation_timeout_ms=10_000)
# How long after a cancel request the run may take to return. The runner promises "within a few
# seconds" (slices of 0.5 s, then a kill after 1.5 s); the margin is for a loaded CI machine.
CANCEL_BOUND_SECONDS = 6.0


def statuses(report):
    return [record.status for record in report.history]


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.size


def chromium_descendants() -> list[int]:
    found = []
    for pid in descendants_of([os.getpid()]):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if b"chrom" in cmdline.read().lower():
                    found.append(pid)
        except OSError:
            continue
    return found
