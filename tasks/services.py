"""Tasks: every write and rule about a task and its runs.

A run goes created/finished -> queued (`task_initiate`, row lock, message sent after
commit) -> running (`task_run_claim`, in the worker) -> completed | failed
(`task_run_finish`), or cancelled from queued or running (`task_cancel`). A run is
identified by (task id, run_number, attempt); every write a worker makes is conditional on
that identity still being current, which is what makes jobs idempotent and lets the
sweeper (`task_sweep_stale_runs`) safely fail or restart runs whose worker vanished.
"""

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from config.errors import Conflict
from results import services as result_services
from tasks import runner
from tasks.models import ACTIVE_STATUSES, ExpectedStatus, Task, TaskStatus

logger = logging.getLogger(__name__)

SETTINGS_FROZEN = "Settings cannot change while the task is queued or running."
ALREADY_ACTIVE = "Task is already queued or running."
# Step outcomes that count as done in `progress` (the others were skipped or cancelled).
EXECUTED = ("ok", "failed")


# SETTINGS AND LIFECYCLE (API, admin)
# ------------------------------------------------------------------------------


def task_create(*, owner, task_name: str) -> Task:
    """A new task, status `created`, with default agent and browser settings."""
    task = Task(owner=owner, task_name=task_name)
    task.full_clean()
    task.save()
    return task


def _lock(task: Task) -> Task:
    """The task's row, locked until the end of the transaction, with its current values."""
    return Task.objects.select_for_update().get(pk=task.pk)


def _update_settings(*, task: Task, changes: dict) -> Task:
    with transaction.atomic():
        locked = _lock(task)
        if locked.is_active:
            raise Conflict(SETTINGS_FROZEN)
        for name, value in changes.items():
            setattr(locked, name, value)
        locked.full_clean()
        if changes:
            locked.save(update_fields=[*changes, "updated_at"])
    return locked


def task_agent_settings_update(*, task: Task, llm_provider=None, llm_model=None, temperature=None) -> Task:
    """Change the agent settings; 409 while a run is queued or running."""
    given = {"llm_provider": llm_provider, "llm_model": llm_model, "temperature": temperature}
    return _update_settings(task=task, changes={k: v for k, v in given.items() if v is not None})


def task_browser_settings_update(
    *, task: Task, browser_headless_mode=None, window_width=None, window_height=None
) -> Task:
    """Change the browser settings; 409 while a run is queued or running."""
    given = {
        "browser_headless_mode": browser_headless_mode,
        "window_width": window_width,
        "window_height": window_height,
    }
    return _update_settings(task=task, changes={k: v for k, v in given.items() if v is not None})


def _step_errors(error: runner.StepValidationError) -> dict:
    """The runner's messages in DRF's field-error shape: per-step problems go under "steps"."""
    per_step = {key: texts for key, texts in error.messages.items() if key.isdigit()}
    detail = {key: texts for key, texts in error.messages.items() if not key.isdigit()}
    if per_step:
        detail["steps"] = per_step
    return detail


def task_plan(
    *, steps, start_url: str, search_input_input: str, search_input_action: str, expected_outcome: str
) -> list[dict]:
    """The steps a run will execute: the client's, validated, or a plan built from the fields."""
    try:
        if steps:
            return runner.validate_steps(steps)
        return runner.plan_steps(
            start_url=start_url,
            search_input_input=search_input_input,
            search_input_action=search_input_action,
            expected_outcome=expected_outcome,
        )
    except runner.StepValidationError as error:
        raise ValidationError(_step_errors(error)) from None


def _send_run(task_id: int, run_number: int) -> None:
    from tasks import jobs  # jobs imports this module

    try:
        jobs.run_task.apply_async(args=(task_id, run_number))
    except Exception:  # a broker outage must not turn a committed 202 into a 500
        # The run stays queued; the sweeper sends it again (TASKS_QUEUE_RESEND_AFTER).
        logger.exception(
            "could not send run %s of task %s to the broker; the sweeper will resend it", run_number, task_id
        )


def _queue_run(*, locked: Task, total_steps: int) -> None:
    """Move a locked, finished task to a new queued run and send its message once committed."""
    if locked.is_active:
        raise Conflict(ALREADY_ACTIVE)
    cap = settings.TASKS_MAX_ACTIVE_PER_USER
    if cap and Task.objects.filter(owner_id=locked.owner_id, status__in=ACTIVE_STATUSES).count() >= cap:
        raise Conflict(f"You already have {cap} tasks queued or running; wait for one to finish.")
    now = timezone.now()
    locked.status = TaskStatus.QUEUED
    locked.run_number += 1
    locked.attempt = 0
    locked.progress_done = 0
    locked.progress_total = total_steps
    locked.error = ""
    locked.queued_at = locked.enqueued_at = now
    locked.started_at = locked.heartbeat_at = locked.finished_at = None
    locked.save()
    task_id, run_number = locked.pk, locked.run_number
    transaction.on_commit(lambda: _send_run(task_id, run_number))


def task_initiate(
    *,
    task: Task,
    instruction: str,
    description: str = "",
    start_url: str = "",
    steps: list | None = None,
    search_input_input: str = "",
    search_input_action: str = "",
    expected_outcome: str = "",
    expected_status: str = ExpectedStatus.SUCCESS,
) -> Task:
    """Start a new run with this definition (each initiate replaces the previous one); 409 while one is in flight.

    The row lock makes concurrent initiates queue exactly one run; the message is sent only
    after the commit, so a worker never looks for a row it cannot see yet.
    """
    planned = task_plan(
        steps=steps,
        start_url=start_url,
        search_input_input=search_input_input,
        search_input_action=search_input_action,
        expected_outcome=expected_outcome,
    )
    with transaction.atomic():
        locked = _lock(task)
        if locked.is_active:
            raise Conflict(ALREADY_ACTIVE)
        locked.instruction = instruction
        locked.description = description
        locked.start_url = start_url
        locked.steps = planned if steps else []  # validated and normalised by task_plan
        locked.search_input_input = search_input_input
        locked.search_input_action = search_input_action
        locked.expected_outcome = expected_outcome
        locked.expected_status = expected_status
        _queue_run(locked=locked, total_steps=len(planned))
    return locked


def task_rerun(*, task: Task) -> Task:
    """Run the task again with its last definition (the admin's re-run action)."""
    with transaction.atomic():
        locked = _lock(task)
        planned = task_plan(
            steps=locked.steps,
            start_url=locked.start_url,
            search_input_input=locked.search_input_input,
            search_input_action=locked.search_input_action,
            expected_outcome=locked.expected_outcome,
        )
        _queue_run(locked=locked, total_steps=len(planned))
    return locked


def task_cancel(*, task: Task) -> Task:
    """Cancel a queued or running run; a running browser notices within TASKS_CANCEL_POLL_SECONDS and stops."""
    with transaction.atomic():
        locked = _lock(task)
        if not locked.is_active:
            raise Conflict("Only a queued or running task can be cancelled.")
        locked.status = TaskStatus.CANCELLED
        locked.finished_at = timezone.now()
        locked.save(update_fields=["status", "finished_at", "updated_at"])
    return locked


def task_delete(*, task: Task) -> list[result_services.DeletionOutcome]:
    """Delete a task, its result and every stored file of it; 409 while running.

    A file the storage refuses now stays journalled and is deleted by the retry job.
    """
    with transaction.atomic():
        locked = _lock(task)
        if locked.status == TaskStatus.RUNNING:
            raise Conflict("A running task cannot be deleted; cancel it first.")
        journal_ids = result_services.result_files_forget(task_ids=[locked.pk])
        locked.delete()
    return result_services.pending_file_deletions_process(ids=journal_ids)


# RUNS (worker)
# ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunClaim:
    """The run a worker owns: its identity and everything it needs to drive the browser."""

    task_id: int
    run_number: int
    attempt: int
    steps: list
    options: "runner.BrowserOptions"
    expected_status: str


def _heartbeat_stale(task: Task, now) -> bool:
    limit = timedelta(seconds=settings.TASKS_HEARTBEAT_TIMEOUT)
    return task.heartbeat_at is None or task.heartbeat_at < now - limit


def _fail_locked(locked: Task, error: str) -> None:
    locked.status = TaskStatus.FAILED
    locked.error = error
    locked.finished_at = timezone.now()
    locked.save(update_fields=["status", "error", "finished_at", "updated_at"])


def _worker_lost_error(attempts: int) -> str:
    times = "once" if attempts == 1 else f"{attempts} times"
    return (
        f"The worker running this task stopped responding (killed or crashed) {times}; "
        "the run was given up. Initiate the task again to retry."
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
                _fail_locked(locked, _worker_lost_error(locked.attempt))
                return None
        elif locked.status != TaskStatus.QUEUED:
            return None
        try:
            steps = task_plan(
                steps=locked.steps,
                start_url=locked.start_url,
                search_input_input=locked.search_input_input,
                search_input_action=locked.search_input_action,
                expected_outcome=locked.expected_outcome,
            )
        except ValidationError as error:  # the rules tightened since it was queued
            _fail_locked(locked, f"The task's steps are no longer valid: {error.messages}")
            return None
        locked.status = TaskStatus.RUNNING
        locked.attempt += 1
        locked.started_at = locked.heartbeat_at = now
        locked.progress_done, locked.progress_total = 0, len(steps)
        locked.error = ""
        locked.save(
            update_fields=[
                "status",
                "attempt",
                "started_at",
                "heartbeat_at",
                "progress_done",
                "progress_total",
                "error",
                "updated_at",
            ]
        )
        return RunClaim(
            task_id=locked.pk,
            run_number=locked.run_number,
            attempt=locked.attempt,
            steps=steps,
            options=runner.BrowserOptions(
                headless=locked.browser_headless_mode,
                width=locked.window_width,
                height=locked.window_height,
                step_timeout_ms=settings.TASKS_STEP_TIMEOUT_MS,
                navigation_timeout_ms=settings.TASKS_NAVIGATION_TIMEOUT_MS,
            ),
            expected_status=locked.expected_status,
        )


def _own_run(claim: RunClaim):
    """The task row while this run is still this worker's (running, same run and attempt)."""
    return Task.objects.filter(
        pk=claim.task_id, run_number=claim.run_number, attempt=claim.attempt, status=TaskStatus.RUNNING
    )


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

    def beat(self) -> bool:
        """Write the heartbeat now; False (and `lost`) when the run is no longer ours."""
        self._last_beat = self._last_poll = time.monotonic()
        if not _own_run(self.claim).update(heartbeat_at=timezone.now()):
            self.lost = True
        return not self.lost

    def on_step(self, done: int, total: int) -> None:
        self._last_beat = self._last_poll = time.monotonic()
        updated = _own_run(self.claim).update(
            progress_done=done, progress_total=total, heartbeat_at=timezone.now(), updated_at=timezone.now()
        )
        if not updated:
            self.lost = True

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


def run_deadline_seconds() -> float:
    """How long the browser may run: the soft limit, minus time to render and store the files."""
    soft = settings.TASKS_SOFT_TIME_LIMIT
    return max(soft - max(5, soft // 10), 1)


def task_run_fail(*, claim: RunClaim, error: str) -> bool:
    """Fail the run if it is still this worker's; False when it was not (nothing changed)."""
    with transaction.atomic():
        locked = _own_run(claim).select_for_update().first()
        if locked is None:
            return False
        _fail_locked(locked, error)
        return True


def task_run_finish(
    *, claim: RunClaim, report, files: list[result_services.StoredFile], error: str, warnings: list[str]
) -> bool:
    """Record the run's Result and end it completed (the browser ran to the end) or failed (`error`).

    Returns False, and deletes the uploaded files, when the run stopped being this
    worker's meanwhile (cancelled, deleted, taken over): a late worker never writes.
    """
    with transaction.atomic():
        locked = _own_run(claim).select_for_update().first()
        if locked is not None:
            result_services.result_record(
                task=locked,
                run_number=claim.run_number,
                files=files,
                expectation_met=report.expectation_met,
                run_failed=bool(error),
                history=[record.to_dict() for record in report.history],
                warnings=warnings,
            )
            locked.status = TaskStatus.FAILED if error else TaskStatus.COMPLETED
            locked.error = error
            locked.progress_done = sum(record.status in EXECUTED for record in report.history)
            locked.finished_at = locked.heartbeat_at = timezone.now()
            locked.save(update_fields=["status", "error", "progress_done", "finished_at", "heartbeat_at", "updated_at"])
    if locked is None:
        result_services.result_files_discard(files=files)
        return False
    return True


def _artifacts(*, claim: RunClaim, report) -> tuple[list[result_services.Artifact], list[str]]:
    warnings = []
    if not report.frames:
        warnings.append("The browser took no screenshot; the GIF is a placeholder.")
    gif = runner.render_gif(report.frames, max_width=settings.RESULTS_GIF_MAX_WIDTH)
    # The replay uses the selectors as resolved in the page, so it needs no smart-selector logic.
    script = runner.render_script(
        steps=report.replay_steps(), options=claim.options, expected_status=claim.expected_status
    )
    history = result_services.history_document(
        task_id=claim.task_id,
        run_number=claim.run_number,
        steps=report.steps,
        history=[record.to_dict() for record in report.history],
        error=report.error,
    )
    artifacts = [
        result_services.Artifact(kind="gif", content=gif),
        result_services.Artifact(kind="script", content=script.encode()),
        result_services.Artifact(kind="history", content=history),
    ]
    return artifacts, warnings


def task_run_execute(*, task_id: int, run_number: int) -> None:
    """The whole run, as the worker executes it: claim, drive the browser, store the files, finish.

    Idempotent: a delivery for a run that is finished, running elsewhere, cancelled or
    replaced does nothing.
    """
    claim = task_run_claim(task_id=task_id, run_number=run_number)
    if claim is None:
        logger.info("task %s run %s: nothing to do (finished, running elsewhere or replaced)", task_id, run_number)
        return
    deadline_seconds = run_deadline_seconds()
    watch = RunWatch(claim, deadline_seconds=deadline_seconds)
    try:
        report = runner.run_browser(
            steps=claim.steps, options=claim.options, on_step=watch.on_step, should_cancel=watch.should_cancel
        )
    except SoftTimeLimitExceeded:
        task_run_fail(
            claim=claim,
            error=f"The run did not finish within its time limit ({settings.TASKS_SOFT_TIME_LIMIT} seconds) "
            "and was stopped.",
        )
        return
    except Exception as error:  # the run ends failed, never stuck
        logger.exception("task %s run %s: the browser run crashed", task_id, run_number)
        task_run_fail(claim=claim, error=f"The browser run crashed: {type(error).__name__}: {error}")
        return
    if watch.lost:
        logger.info("task %s run %s: stopped (cancelled or taken over)", task_id, run_number)
        return
    error = report.error
    if watch.timed_out:
        error = f"The run did not finish within its time limit ({int(deadline_seconds)} seconds) and was stopped."
    if not watch.beat():  # rendering takes a moment: say we are alive, and check we still own the run
        return
    task_run_record(claim=claim, report=report, error=error)


def task_run_record(*, claim: RunClaim, report, error: str) -> bool:
    """Render and store the run's files, then finish it (completed, or failed with `error`).

    False when the run was no longer this worker's by then (nothing recorded, files discarded).
    """
    try:
        artifacts, warnings = _artifacts(claim=claim, report=report)
        files = result_services.result_files_upload(
            task_id=claim.task_id, run_number=claim.run_number, artifacts=artifacts
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
    warnings += [file.warning for file in files if file.warning]
    return task_run_finish(claim=claim, report=report, files=files, error=error, warnings=warnings)


# SWEEPER (beat)
# ------------------------------------------------------------------------------


@dataclass
class SweepReport:
    timed_out: list[int]
    worker_lost: list[int]
    restarted: list[int]
    resent: list[int]
    never_started: list[int]


def task_sweep_stale_runs() -> SweepReport:
    """Nothing stays queued or running forever. Runs periodically (beat); safe to run concurrently.

    - running past the hard time limit -> failed, the error says so;
    - running with a stale heartbeat (its worker died) -> queued again while attempts
      remain (the run is re-run once by default), else failed;
    - queued and not taken for TASKS_QUEUE_RESEND_AFTER -> the message is sent again (a
      duplicate is a no-op); queued past TASKS_QUEUE_TIMEOUT -> failed.
    """
    now = timezone.now()
    report = SweepReport([], [], [], [], [])
    hard_limit = settings.TASKS_TIME_LIMIT
    past_limit = now - timedelta(seconds=hard_limit + settings.TASKS_HEARTBEAT_SECONDS)
    stale = now - timedelta(seconds=settings.TASKS_HEARTBEAT_TIMEOUT)
    resend_before = now - timedelta(seconds=settings.TASKS_QUEUE_RESEND_AFTER)
    give_up_before = now - timedelta(seconds=settings.TASKS_QUEUE_TIMEOUT)

    with transaction.atomic():
        for locked in Task.objects.select_for_update(skip_locked=True).filter(
            status=TaskStatus.RUNNING, started_at__lt=past_limit
        ):
            _fail_locked(locked, f"The run did not finish within the {hard_limit}-second time limit and was stopped.")
            report.timed_out.append(locked.pk)

    with transaction.atomic():
        for locked in Task.objects.select_for_update(skip_locked=True).filter(
            status=TaskStatus.RUNNING, heartbeat_at__lt=stale
        ):
            if locked.attempt >= settings.TASKS_MAX_ATTEMPTS:
                _fail_locked(locked, _worker_lost_error(locked.attempt))
                report.worker_lost.append(locked.pk)
                continue
            locked.status = TaskStatus.QUEUED
            locked.enqueued_at = now
            locked.progress_done = 0
            locked.save(update_fields=["status", "enqueued_at", "progress_done", "updated_at"])
            task_id, run_number = locked.pk, locked.run_number
            transaction.on_commit(lambda t=task_id, r=run_number: _send_run(t, r))
            report.restarted.append(locked.pk)

    with transaction.atomic():
        for locked in Task.objects.select_for_update(skip_locked=True).filter(
            status=TaskStatus.QUEUED, enqueued_at__lt=resend_before
        ):
            if locked.queued_at < give_up_before:
                _fail_locked(
                    locked,
                    f"No worker started this run within {settings.TASKS_QUEUE_TIMEOUT} seconds; "
                    "is a Celery worker running?",
                )
                report.never_started.append(locked.pk)
                continue
            locked.enqueued_at = now
            locked.save(update_fields=["enqueued_at", "updated_at"])
            task_id, run_number = locked.pk, locked.run_number
            transaction.on_commit(lambda t=task_id, r=run_number: _send_run(t, r))
            report.resent.append(locked.pk)
    if any(vars(report).values()):
        logger.warning("sweep: %s", report)
    return report
