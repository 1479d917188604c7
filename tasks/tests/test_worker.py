"""End to end: the HTTP API, a real Celery worker process (Redis broker), real Chromium, the local test site.

Run with PostgreSQL and a Redis broker, e.g.:
DATABASE_URL=postgres://... CELERY_BROKER_URL=redis://127.0.0.1:6379/7 .venv/bin/pytest tasks/tests/test_worker.py
"""

import io
import re
import subprocess
import sys
import threading
import time

import pytest
from django.conf import settings
from django.db import connection
from PIL import Image

from results.models import Result
from tasks.models import Task
from tasks.tests.factories import (
    FINISHED,
    create_task,
    fetch,
    initiate,
    script_environment,
    wait_for_status,
    wait_until,
)
from tasks.tests.worker import descendants

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def run_script(source: bytes, tmp_path, name: str) -> subprocess.CompletedProcess:
    path = tmp_path / name
    path.write_bytes(source)
    return subprocess.run(
        [sys.executable, str(path)], capture_output=True, timeout=120, check=False, env=script_environment()
    )


def chromium_under(pid: int) -> list[int]:
    return [child for child, cmdline in descendants(pid) if "chrom" in cmdline.lower()]


@pytest.mark.browser
def test_planned_and_explicit_runs_end_to_end(
    auth_client, make_user, login, client_for, local_site, start_worker, tmp_path, media_root
):
    start_worker()
    task_id = create_task(auth_client)
    browser = auth_client.patch(
        f"/api/v1/tasks/{task_id}/browser-settings",
        {"browser_headless_mode": True, "window_width": 1024, "window_height": 700},
        format="json",
    )
    assert browser.status_code == 200

    # 1. No steps: planned from the fields (open, type into the search box, Enter, expect).
    queued = initiate(
        auth_client,
        task_id,
        {
            "start_url": local_site.url("/"),
            "search_input_input": "garden lamp",
            "search_input_action": "submit",
            "expected_outcome": "Results for garden lamp",
        },
    )
    assert queued["status"] == "queued"
    task = wait_for_status(auth_client, task_id, FINISHED)
    assert task["status"] == "completed", task["error"]
    assert task["progress"] == {"done": 4, "total": 4}
    assert task["queued_at"] <= task["started_at"] <= task["finished_at"]
    assert "/search?q=garden+lamp" in local_site.requests

    result = auth_client.get(f"/api/v1/results/{task_id}").json()
    assert (result["actual_status"], result["passed"]) == ("success", True)
    assert [step["status"] for step in result["history"]] == ["ok"] * 4
    gif = Image.open(io.BytesIO(fetch(auth_client, result["result_gif"])))
    assert gif.format == "GIF" and gif.is_animated and gif.n_frames == 4  # a frame per step
    assert gif.size[0] <= 800
    script = fetch(auth_client, result["result_json_url"])
    replay = run_script(script, tmp_path, "planned.py")
    assert replay.returncode == 0, replay.stderr.decode()[-2000:]

    # 2. Explicit steps, and an expected text that is absent from the page.
    steps = [
        {"action": "goto", "url": local_site.url("/")},
        {"action": "fill", "selector": "input[name=q]", "text": "sofa"},
        {"action": "click", "selector": "button[type=submit]"},
        {"action": "wait_for", "text": "Results for sofa"},
        {"action": "expect_text", "text": "Results for armchair"},
    ]
    queued = initiate(auth_client, task_id, {"steps": steps, "expected_status": "success"})
    assert queued["run"] == 2 and queued["progress"] == {"done": 0, "total": 5}
    task = wait_for_status(auth_client, task_id, FINISHED)
    assert task["status"] == "completed", task["error"]

    result = auth_client.get(f"/api/v1/results/{task_id}").json()
    assert result["run"] == 2
    assert (result["actual_status"], result["passed"]) == ("failure", False)
    assert Image.open(io.BytesIO(fetch(auth_client, result["result_gif"]))).n_frames == 5
    replay = run_script(fetch(auth_client, result["result_json_url"]), tmp_path, "explicit.py")
    assert replay.returncode != 0  # the expectation does not hold
    assert b"AssertionError" in replay.stderr

    # The first run's files went when the second run's result replaced them.
    assert len(list((media_root / "results").iterdir())) == 3

    # Another user sees none of it.
    stranger = client_for(login(make_user("mallory")).access)
    assert stranger.get(f"/api/v1/tasks/{task_id}").status_code == 404
    assert stranger.get(f"/api/v1/results/{task_id}").status_code == 404
    for kind in ("gif", "script", "history"):
        assert stranger.get(f"/api/v1/results/{task_id}/{kind}").status_code == 404

    # Deleting the task removes its files from storage.
    assert auth_client.delete(f"/api/v1/tasks/{task_id}").status_code == 204
    assert list((media_root / "results").iterdir()) == []


@pytest.mark.browser
def test_expected_failure_passes_when_the_text_is_absent(auth_client, local_site, start_worker, tmp_path):
    start_worker()
    task_id = create_task(auth_client)
    initiate(
        auth_client,
        task_id,
        {
            "start_url": local_site.url("/"),
            "search_input_input": "lamp",
            "expected_outcome": "Out of stock",
            "expected_status": "failure",
        },
    )
    task = wait_for_status(auth_client, task_id, FINISHED)

    assert task["status"] == "completed", task["error"]
    result = auth_client.get(f"/api/v1/results/{task_id}").json()
    assert (result["actual_status"], result["expected_status"], result["passed"]) == ("failure", "failure", True)
    replay = run_script(fetch(auth_client, result["result_json_url"]), tmp_path, "absent.py")
    assert replay.returncode == 0, replay.stderr.decode()[-2000:]


@pytest.mark.browser
def test_a_run_that_cannot_go_on_fails_readably_and_keeps_gif_and_history(
    auth_client, local_site, closed_port_url, start_worker
):
    start_worker()
    missing = create_task(auth_client, "missing selector")
    unreachable = create_task(auth_client, "unreachable page")
    initiate(
        auth_client,
        missing,
        {
            "steps": [
                {"action": "goto", "url": local_site.url("/")},
                {"action": "click", "selector": "#no-such-button", "timeout_ms": 1500},
                {"action": "expect_text", "text": "never reached"},
            ]
        },
    )
    initiate(auth_client, unreachable, {"steps": [{"action": "goto", "url": closed_port_url}]})

    task = wait_for_status(auth_client, missing, FINISHED)
    assert task["status"] == "failed"
    assert "#no-such-button" in task["error"]
    assert task["progress"] == {"done": 2, "total": 3}
    result = auth_client.get(f"/api/v1/results/{missing}").json()
    assert [step["status"] for step in result["history"]] == ["ok", "failed", "skipped"]
    assert result["passed"] is False
    assert Image.open(io.BytesIO(fetch(auth_client, result["result_gif"]))).n_frames == 2

    task = wait_for_status(auth_client, unreachable, FINISHED)
    assert task["status"] == "failed"
    assert task["error"] and "Traceback" not in task["error"]
    result = auth_client.get(f"/api/v1/results/{unreachable}").json()
    assert result["history"][0]["status"] == "failed"
    assert fetch(auth_client, result["result_gif"])[:6] == b"GIF89a"


@pytest.mark.browser
def test_cancel_stops_a_running_browser_within_seconds(auth_client, local_site, start_worker):
    worker = start_worker()
    task_id = create_task(auth_client)
    initiate(
        auth_client,
        task_id,
        {
            "steps": [
                {"action": "goto", "url": local_site.url("/")},
                {"action": "wait_for", "text": "a text that never appears", "timeout_ms": 60_000},
                {"action": "goto", "url": local_site.url("/after-cancel")},
            ]
        },
    )
    wait_until(
        lambda: Task.objects.get(pk=task_id).progress_done >= 1 and chromium_under(worker.pid),
        timeout=60,
        what="the browser to be running the long wait",
    )

    response = auth_client.post(f"/api/v1/tasks/{task_id}/cancel")
    cancelled_at = time.monotonic()

    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    wait_until(lambda: not chromium_under(worker.pid), timeout=10, what="Chromium to exit")
    assert time.monotonic() - cancelled_at < 10
    worker.wait_for_log("succeeded", timeout=10)  # the job returned; the worker is free again
    task = Task.objects.get(pk=task_id)
    assert task.status == "cancelled"
    assert not Result.objects.filter(task_id=task_id).exists()
    assert "/after-cancel" not in local_site.requests


@pytest.mark.browser
def test_a_second_delivery_of_the_same_job_is_a_no_op(auth_client, local_site, start_worker):
    from tasks import jobs

    worker = start_worker(concurrency=2)
    task_id = create_task(auth_client)
    initiate(
        auth_client,
        task_id,
        {
            "steps": [
                {"action": "goto", "url": local_site.url("/slow?seconds=2")},
                {"action": "expect_text", "text": "Slow"},
            ]
        },
    )
    # The same message again while the first is running, and once more after it finished.
    wait_until(lambda: Task.objects.get(pk=task_id).status == "running", timeout=30, what="running")
    jobs.run_task.delay(task_id, 1)
    wait_for_status(auth_client, task_id, FINISHED)
    first_result = Result.objects.get(task_id=task_id)
    jobs.run_task.delay(task_id, 1)
    wait_until(lambda: worker.count("succeeded") == 3, timeout=30, what="three deliveries handled")

    task = Task.objects.get(pk=task_id)
    assert task.status == "completed" and task.attempt == 1
    assert list(Result.objects.filter(task_id=task_id).values_list("pk", flat=True)) == [first_result.pk]
    assert worker.count("nothing to do") == 2


@pytest.mark.postgres
def test_ten_concurrent_initiates_queue_exactly_one_run(user, login, client_for, local_site, start_worker):
    task_id = create_task(client_for(login(user).access))
    token = login(user).access
    barrier = threading.Barrier(10)
    codes = []

    def initiate_once():
        try:
            client = client_for(token)
            barrier.wait()
            response = client.patch(
                f"/api/v1/tasks/{task_id}/initiate",
                {"instruction": "race", "steps": [{"action": "goto", "url": local_site.url("/")}]},
                format="json",
            )
            codes.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=initiate_once) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(codes) == [202] + [409] * 9
    assert Task.objects.get(pk=task_id).run_number == 1
    # Exactly one message reached the broker: a worker started now receives one run.
    worker = start_worker()
    wait_until(lambda: Task.objects.get(pk=task_id).status in FINISHED, timeout=60, what="the run to finish")
    time.sleep(1)
    assert len(re.findall(r"Task tasks\.run_task\[[^\]]+\] received", worker.log())) == 1, worker.log()
    assert Result.objects.filter(task_id=task_id).count() == 1


def _slow_run(client, site) -> int:
    task_id = create_task(client)
    initiate(
        client,
        task_id,
        {"steps": [{"action": "goto", "url": site.url("/slow?seconds=6")}, {"action": "expect_text", "text": "Slow"}]},
    )
    return task_id


# Short limits so that a lost worker is noticed in seconds, not minutes.
FAST_RECOVERY = {"TASK_HEARTBEAT_SECONDS": "1", "TASK_HEARTBEAT_TIMEOUT": "4", "TASK_SWEEP_INTERVAL": "1"}


@pytest.mark.browser
def test_a_worker_killed_mid_run_ends_failed_never_stuck(auth_client, local_site, start_worker, start_beat):
    limits = {**FAST_RECOVERY, "TASK_MAX_ATTEMPTS": "1", "TASK_TIME_LIMIT": "30"}
    doomed = start_worker(**limits)
    task_id = _slow_run(auth_client, local_site)
    wait_until(lambda: Task.objects.get(pk=task_id).status == "running", timeout=30, what="running")
    wait_until(lambda: chromium_under(doomed.pid), timeout=30, what="Chromium to start")

    doomed.kill()  # SIGKILL to the worker and its pool process, mid-run
    killed_at = time.monotonic()
    start_worker(**limits)  # the supervisor brings a worker back; beat keeps sweeping
    start_beat(**limits)

    task = wait_for_status(auth_client, task_id, FINISHED, timeout=30)
    assert task["status"] == "failed"
    assert "stopped responding (killed or crashed)" in task["error"]
    assert time.monotonic() - killed_at < int(limits["TASK_TIME_LIMIT"])


@pytest.mark.browser
def test_a_worker_killed_mid_run_gets_its_run_restarted_once(auth_client, local_site, start_worker, start_beat):
    limits = {**FAST_RECOVERY, "TASK_MAX_ATTEMPTS": "2", "TASK_TIME_LIMIT": "60"}
    doomed = start_worker(**limits)
    task_id = _slow_run(auth_client, local_site)
    wait_until(lambda: chromium_under(doomed.pid), timeout=30, what="Chromium to start")

    doomed.kill()
    start_worker(**limits)
    start_beat(**limits)

    task = wait_for_status(auth_client, task_id, FINISHED, timeout=60)
    assert task["status"] == "completed", task["error"]
    assert Task.objects.get(pk=task_id).attempt == 2
    assert Result.objects.filter(task_id=task_id).count() == 1
    assert settings.TASKS_MAX_ATTEMPTS == 2  # the default: a lost run is re-run once
