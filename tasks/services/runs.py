"""A run as the worker carries it out: claim, watch (heartbeat, cancel, deadline), record, finish.

A run is identified by (task id, run_number, attempt); every write a worker makes is
conditional on that identity still being current, which is what makes the job idempotent
and lets the sweeper (`tasks.services.sweeper`) safely fail or restart runs whose worker
vanished.
"""

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import InvalidInput
from results import services as result_services
from tasks import runner
from tasks.models import Task, TaskStatus
from tasks.services import provider_keys
from tasks.services.lifecycle import task_is_agent_run, task_plan, task_run_size
from tasks.services.scheduling import run_handoff_on_commit

logger = logging.getLogger(__name__)

# Step outcomes that count as done in `progress` (the others were skipped or cancelled).
EXECUTED = ("ok", "failed")


@dataclass(frozen=True)
class RunClaim:
    """The run a worker owns: its identity and everything it needs to drive the browser."""

    task_id: int
    run_number: int
    attempt: int
    steps: list
    options: runner.BrowserOptions
    expected_status: str
    # An agent run's model, task and bounds (the provider key decrypted, in this worker's memory only).
    agent: runner.AgentOptions | None = None


# ERRORS AND ENDINGS shared with the sweeper
# ------------------------------------------------------------------------------


def time_limit_error(seconds: int) -> str:
    return f"The run did not finish within the {seconds}-second time limit and was stopped."


def worker_lost_error(attempts: int) -> str:
    times = "once" if attempts == 1 else f"{attempts} times"
    return (
        f"The worker running this task stopped responding (killed or crashed) {times}; "
        "the run was given up. Initiate the task again to retry."
    )


def fail_locked(locked: Task, error: str) -> None:
    """End a locked task's run failed, with the reason; after commit, the owner's next held run is sent."""
    locked.status = TaskStatus.FAILED
    locked.error = error
    locked.finished_at = timezone.now()
    locked.save(update_fields=["status", "error", "finished_at", "updated_at"])
    run_handoff_on_commit(locked.owner_id)


# CLAIM
# ------------------------------------------------------------------------------


def _heartbeat_stale(task: Task, now) -> bool:
    limit = timedelta(seconds=settings.TASKS_HEARTBEAT_TIMEOUT)
    return task.heartbeat_at is None or task.heartbeat_at < now - limit


def _browser_options(task: Task) -> runner.BrowserOptions:
    return runner.BrowserOptions(
        headless=task.browser_headless_mode,
        width=task.window_width,
        height=task.window_height,
        step_timeout_ms=settings.TASKS_STEP_TIMEOUT_MS,
        navigation_timeout_ms=settings.TASKS_NAVIGATION_TIMEOUT_MS,
        egress_allowlist=tuple(settings.EGRESS_ALLOWLIST),
        no_sandbox=settings.CHROMIUM_NO_SANDBOX,
        frame_width=settings.RESULTS_GIF_MAX_WIDTH,
        max_frame_bytes=settings.TASKS_MAX_FRAME_BYTES,
    )


def _agent_options(task: Task) -> runner.AgentOptions:
    """The model, the task and the bounds of an agent run; InvalidInput when no key can be used any more."""
    key = provider_keys.provider_key_for_run(
        owner_id=task.owner_id, provider=task.llm_provider, provider_key_id=task.provider_key_id
    )
    provider = runner.ProviderConfig(
        provider=task.llm_provider,
        model=task.llm_model or settings.TASKS_AGENT_DEFAULT_MODELS.get(task.llm_provider, ""),
        api_key=key.api_key,
        base_url=key.base_url,
        base_url_trusted=key.base_url_trusted,
        temperature=task.temperature,
        call_timeout_s=settings.TASKS_AGENT_CALL_TIMEOUT_SECONDS,
        egress_allowlist=tuple(settings.EGRESS_ALLOWLIST),
    )
    return runner.AgentOptions(
        provider=provider,
        instruction=task.instruction,
        start_url=task.start_url.strip(),
        expected_outcome=task.expected_outcome.strip(),
        max_steps=task.max_steps,
        time_limit_s=run_deadline_seconds(),
        screenshots=settings.TASKS_AGENT_SCREENSHOTS,
    )


def task_run_claim(*, task_id: int, run_number: int) -> RunClaim | None:
    """Take run `run_number` of a task for this worker: queued -> running. None: nothing to do.

    A second delivery finds the run running (with a fresh heartbeat) or finished and does
    nothing. A delivery that finds it running with a stale heartbeat comes after its worker
    died: it takes the run over while attempts remain, else fails it.
    """
    with transaction.atomic():
        locked = Task.objects.select_for_update().filter(pk=task_id).first()
        if locked is None or locked.run_number != run_number:
            return None  # deleted, or a newer run replaced this one
        now = timezone.now()
        if locked.status == TaskStatus.RUNNING and _heartbeat_stale(locked, now):
            if locked.attempt >= settings.TASKS_MAX_ATTEMPTS:
                fail_locked(locked, worker_lost_error(locked.attempt))
                return None
        elif locked.status != TaskStatus.QUEUED or locked.enqueued_at is None:
            return None  # finished, or held for fairness (a stray message must not jump the line)
        try:
            steps = task_plan(locked)
        except InvalidInput as error:  # the rules tightened since it was queued
            fail_locked(locked, f"The task's steps are no longer valid: {error.detail}")
            return None
        try:
            agent = _agent_options(locked) if task_is_agent_run(locked) else None
        except InvalidInput as error:  # its key was deleted since it was queued
            fail_locked(locked, f"The run's model cannot be used: {_messages(error)}")
            return None
        locked.status = TaskStatus.RUNNING
        locked.attempt += 1
        locked.started_at = locked.heartbeat_at = now
        locked.progress_done, locked.progress_total = 0, task_run_size(locked, steps)
        locked.error = ""
        locked.save(
            update_fields=[
                *("status", "attempt", "started_at", "heartbeat_at"),
                *("progress_done", "progress_total", "error", "updated_at"),
            ]
        )
        return RunClaim(
            task_id=locked.pk,
            run_number=locked.run_number,
            attempt=locked.attempt,
            steps=steps,
            options=_browser_options(locked),
            expected_status=locked.expected_status,
            agent=agent,
        )


def _messages(error: InvalidInput) -> str:
    """An InvalidInput's messages as one line (its detail is {field: [message, ...]})."""
    detail = error.detail
    if isinstance(detail, dict):
        return " ".join(str(message) for messages in detail.values() for message in messages)
    return str(detail)


def _own_run(claim: RunClaim):
    """The task row while this run is still this worker's (running, same run and attempt)."""
    return Task.objects.filter(
        pk=claim.task_id, run_number=claim.run_number, attempt=claim.attempt, status=TaskStatus.RUNNING
    )


# WATCH
# ------------------------------------------------------------------------------


class RunWatch:
    """The runner's callbacks for one claimed run: progress, heartbeat, cancel and deadline.

    `should_cancel` is polled often by the runner; it reads the task's status at most every
    TASKS_CANCEL_POLL_SECONDS (one primary-key query) and writes the heartbeat at most every
    TASKS_HEARTBEAT_SECONDS, so watching a run costs about one query a second.
    """

    def __init__(self, claim: RunClaim, *, deadline_seconds: float):
        self.claim = claim
        self.deadline = time.monotonic() + deadline_seconds
        self.lost = False  # cancelled, or taken over by another attempt: the run is not ours any more
        self.timed_out = False
        self._last_poll = self._last_beat = time.monotonic()

    def _write(self, **fields) -> bool:
        """Update our run's row; a run that is not ours any more is `lost`."""
        self._last_beat = self._last_poll = time.monotonic()
        if not _own_run(self.claim).update(heartbeat_at=timezone.now(), **fields):
            self.lost = True
        return not self.lost

    def beat(self) -> bool:
        """Write the heartbeat now; False (and `lost`) when the run is no longer ours."""
        return self._write()

    def on_step(self, done: int, total: int) -> None:
        self._write(progress_done=done, progress_total=total, updated_at=timezone.now())

    def should_cancel(self) -> bool:
        if self.lost or self.timed_out:
            return True
        now = time.monotonic()
        if now >= self.deadline:
            self.timed_out = True
            return True
        if now - self._last_beat >= settings.TASKS_HEARTBEAT_SECONDS:
            self.beat()
        elif now - self._last_poll >= settings.TASKS_CANCEL_POLL_SECONDS:
            self._last_poll = now
            if not _own_run(self.claim).exists():
                self.lost = True
        return self.lost


def run_deadline_seconds() -> int:
    """How long the browser may run: the soft limit, minus time to render and store the files."""
    soft = settings.TASKS_SOFT_TIME_LIMIT
    return max(soft - max(5, soft // 10), 1)


# EXECUTE, RECORD, FINISH
# ------------------------------------------------------------------------------


def task_run_execute(*, task_id: int, run_number: int) -> None:
    """The whole run, as the worker executes it: claim, drive the browser, store the files, finish.

    Idempotent: a delivery for a run that is finished, running elsewhere, cancelled or
    replaced does nothing.
    """
    # Here, not at the top: only a worker runs this, and web processes import Celery only when they queue a job.
    from celery.exceptions import SoftTimeLimitExceeded

    claim = task_run_claim(task_id=task_id, run_number=run_number)
    if claim is None:
        logger.info("task %s run %s: nothing to do (finished, running elsewhere or replaced)", task_id, run_number)
        return
    deadline_seconds = run_deadline_seconds()
    watch = RunWatch(claim, deadline_seconds=deadline_seconds)
    try:
        report = _drive(claim, watch)
    except SoftTimeLimitExceeded:
        task_run_fail(claim=claim, error=time_limit_error(settings.TASKS_SOFT_TIME_LIMIT))
        return
    except Exception as error:  # the run ends failed, never stuck
        logger.exception("task %s run %s: the browser run crashed", task_id, run_number)
        task_run_fail(claim=claim, error=f"The browser run crashed: {type(error).__name__}: {error}")
        return
    if watch.lost:
        logger.info("task %s run %s: stopped (cancelled or taken over)", task_id, run_number)
        return
    error = time_limit_error(deadline_seconds) if watch.timed_out else report.error
    if not watch.beat():  # rendering takes a moment: say we are alive, and check we still own the run
        return
    task_run_record(claim=claim, report=report, error=error)


def _drive(claim: RunClaim, watch: RunWatch) -> runner.RunReport:
    if claim.agent is not None:
        return runner.run_agent(
            agent=claim.agent, options=claim.options, on_step=watch.on_step, should_cancel=watch.should_cancel
        )
    return runner.run_browser(
        steps=claim.steps, options=claim.options, on_step=watch.on_step, should_cancel=watch.should_cancel
    )


def task_run_fail(*, claim: RunClaim, error: str) -> bool:
    """Fail the run if it is still this worker's; False when it was not (nothing changed)."""
    with transaction.atomic():
        locked = _own_run(claim).select_for_update().first()
        if locked is None:
            return False
        fail_locked(locked, error)
        return True


def task_run_record(*, claim: RunClaim, report: runner.RunReport, error: str) -> bool:
    """Render and store the run's files, then finish it (completed, or failed with `error`).

    False when the run was no longer this worker's by then (nothing recorded, files discarded).
    """
    try:
        rendered = runner.render_artifacts(
            task_id=claim.task_id,
            run_number=claim.run_number,
            report=report,
            options=claim.options,
            expected_status=claim.expected_status,
            gif_max_width=settings.RESULTS_GIF_MAX_WIDTH,
        )
        files = result_services.result_files_upload(
            task_id=claim.task_id, run_number=claim.run_number, artifacts=rendered.files
        )
    except Exception as storage_error:  # the run still ends, failed, with the reason
        logger.exception("task %s run %s: could not store the result files", claim.task_id, claim.run_number)
        task_run_fail(
            claim=claim,
            error=(error + " " if error else "")
            + f"The result files could not be stored: {type(storage_error).__name__}: {storage_error}",
        )
        return False
    # A file its storage kept refusing is kept locally (results.services): the result says so.
    warnings = rendered.warnings + [file.warning for file in files if file.warning]
    return _finish(claim=claim, report=report, files=files, error=error, warnings=warnings)


def _finish(*, claim: RunClaim, report: runner.RunReport, files: list, error: str, warnings: list[str]) -> bool:
    """Record the Result with the stored `files` and end the run: completed (the browser ran to the end) or failed.

    Returns False, and deletes the uploaded files, when the run stopped being this
    worker's meanwhile (cancelled, deleted, taken over): a late worker never writes.
    """
    with transaction.atomic():
        locked = _own_run(claim).select_for_update().first()
        if locked is not None:
            result_services.result_record(
                task_id=locked.pk,
                run_number=claim.run_number,
                expected_status=locked.expected_status,
                files=files,
                expectation_met=report.expectation_met,
                run_failed=bool(error),
                history=[record.to_dict() for record in report.history],
                warnings=warnings,
                usage=report.usage,
            )
            locked.status = TaskStatus.FAILED if error else TaskStatus.COMPLETED
            locked.error = error
            locked.progress_done = sum(record.status in EXECUTED for record in report.history)
            locked.finished_at = locked.heartbeat_at = timezone.now()
            locked.save(update_fields=["status", "error", "progress_done", "finished_at", "heartbeat_at", "updated_at"])
            run_handoff_on_commit(locked.owner_id)
    if locked is None:
        result_services.result_files_discard(files=files)
        return False
    return True
