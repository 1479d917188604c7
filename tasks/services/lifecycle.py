"""A task's lifecycle as its owner (API) and admins drive it: create, settings, plan, initiate, re-run, cancel, delete.

A run goes created/finished -> queued here (`task_initiate`, `task_rerun`: row lock, message
sent after commit); the worker takes it from there (`tasks.services.runs`).
"""

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config import celery_app
from config.errors import Conflict, InvalidInput
from results import services as result_services
from tasks import runner
from tasks.models import ACTIVE_STATUSES, ExpectedStatus, Task, TaskStatus

logger = logging.getLogger(__name__)

SETTINGS_FROZEN = "Settings cannot change while the task is queued or running."
ALREADY_ACTIVE = "Task is already queued or running."
START_URL_REQUIRED = "Required when no steps are given: the planned run opens this page first."
# The worker's job, by its registered name: sending by name keeps this module free of
# tasks.jobs, which imports the services (jobs -> services, never the reverse).
RUN_JOB = "tasks.run_task"


# SETTINGS
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


def _settings_update(*, task: Task, **given) -> Task:
    """Apply the given settings (None: unchanged); 409 while a run is queued or running."""
    changes = {name: value for name, value in given.items() if value is not None}
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
    return _settings_update(task=task, llm_provider=llm_provider, llm_model=llm_model, temperature=temperature)


def task_browser_settings_update(
    *, task: Task, browser_headless_mode=None, window_width=None, window_height=None
) -> Task:
    """Change the browser settings; 409 while a run is queued or running."""
    return _settings_update(
        task=task, browser_headless_mode=browser_headless_mode, window_width=window_width, window_height=window_height
    )


# PLAN: the one place where a run's steps are validated on the Django side
# ------------------------------------------------------------------------------


def _field_errors(error: runner.StepValidationError) -> dict:
    """The runner's messages in DRF's field-error shape: per-step problems go under "steps" by index."""
    per_step = {key: texts for key, texts in error.messages.items() if key.isdigit()}
    detail = {key: texts for key, texts in error.messages.items() if not key.isdigit()}
    if per_step:
        detail["steps"] = per_step
    return detail


def task_plan(task: Task) -> list[dict]:
    """The steps a run of the task's definition executes: its own, validated and normalised, or a plan
    built from its fields. Raises InvalidInput (400) naming the field, or each bad step by index."""
    explicit = task.steps not in (None, [])  # anything else given is validated, `{}` and "goto" included
    if not explicit and not task.start_url:
        raise InvalidInput({"start_url": [START_URL_REQUIRED]})
    if task.start_url and (problem := runner.url_problem(task.start_url)):
        raise InvalidInput({"start_url": [problem]})  # also with explicit steps, where it is not used
    try:
        if explicit:
            return runner.validate_steps(task.steps)
        return runner.plan_steps(
            start_url=task.start_url,
            search_input_input=task.search_input_input,
            search_input_action=task.search_input_action,
            expected_outcome=task.expected_outcome,
        )
    except runner.StepValidationError as error:
        raise InvalidInput(_field_errors(error)) from None


def _egress_refusal(policy: runner.EgressPolicy, url: object) -> str | None:
    return policy.url_refusal(url) if isinstance(url, str) and not runner.url_problem(url) else None


def task_egress_check(*, start_url: object, steps: object) -> None:
    """The early egress check of a definition: 400 naming each URL (start_url, steps.N) whose host the
    browser may not reach. Made before any row is locked, since it may wait for DNS; the policy itself
    is enforced by the run's proxy when the browser connects, whatever this finds."""
    policy = runner.EgressPolicy.from_entries(settings.EGRESS_ALLOWLIST)
    detail: dict = {}
    if refusal := _egress_refusal(policy, start_url):
        detail["start_url"] = [refusal]
    per_step = {
        str(index): [f'"url": {refusal}']
        for index, step in enumerate(steps if isinstance(steps, list) else [])
        if isinstance(step, dict) and (refusal := _egress_refusal(policy, step.get("url")))
    }
    if per_step:
        detail["steps"] = per_step
    if detail:
        raise InvalidInput(detail)


# RUNS
# ------------------------------------------------------------------------------


def _send_run(task_id: int, run_number: int) -> None:
    try:
        celery_app.send_task(RUN_JOB, args=(task_id, run_number))
    except Exception:  # a broker outage must not turn a committed 202 into a 500
        # The run stays queued; the sweeper sends it again (TASKS_QUEUE_RESEND_AFTER).
        logger.exception(
            "could not send run %s of task %s to the broker; the sweeper will resend it", run_number, task_id
        )


def run_send_on_commit(task: Task) -> None:
    """Send the task's current run to the workers once the transaction commits.

    After the commit, so that a worker never looks for a row it cannot see yet; a message
    that is lost or duplicated is harmless (the sweeper resends, a second claim is a no-op).
    """
    task_id, run_number = task.pk, task.run_number
    transaction.on_commit(lambda: _send_run(task_id, run_number))


def _queue_run(*, locked: Task) -> None:
    """Move a locked, finished task to a new queued run of its current definition.

    The definition is validated first (400), then the state checked (409), then the cap.
    """
    planned = task_plan(locked)
    if locked.is_active:
        raise Conflict(ALREADY_ACTIVE)
    if locked.steps:
        locked.steps = planned  # explicit steps are stored normalised (actions lower-cased, URLs stripped)
    cap = settings.TASKS_MAX_ACTIVE_PER_USER
    if cap and Task.objects.filter(owner_id=locked.owner_id, status__in=ACTIVE_STATUSES).count() >= cap:
        raise Conflict(f"You already have {cap} tasks queued or running; wait for one to finish.")
    now = timezone.now()
    locked.status = TaskStatus.QUEUED
    locked.run_number += 1
    locked.attempt = 0
    locked.progress_done = 0
    locked.progress_total = len(planned)
    locked.error = ""
    locked.queued_at = locked.enqueued_at = now
    locked.started_at = locked.heartbeat_at = locked.finished_at = None
    locked.save()
    run_send_on_commit(locked)


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

    The row lock makes concurrent initiates queue exactly one run. Invalid steps or plan
    fields, or URLs the browser may not reach, are a 400 (InvalidInput) and change nothing.
    """
    task_egress_check(start_url=start_url, steps=steps)
    with transaction.atomic():
        locked = _lock(task)
        locked.instruction = instruction
        locked.description = description
        locked.start_url = start_url
        locked.steps = [] if steps is None else steps
        locked.search_input_input = search_input_input
        locked.search_input_action = search_input_action
        locked.expected_outcome = expected_outcome
        locked.expected_status = expected_status
        _queue_run(locked=locked)
    return locked


def task_rerun(*, task: Task) -> Task:
    """Run the task again with its last definition (the admin's re-run action)."""
    task_egress_check(start_url=task.start_url, steps=task.steps)
    with transaction.atomic():
        locked = _lock(task)
        _queue_run(locked=locked)
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


def task_delete(*, task: Task) -> int:
    """Delete a task, its result and every stored file of it; 409 while running.

    Returns how many files the storage refused to delete now: they stay journalled and
    the retry job deletes them later.
    """
    with transaction.atomic():
        locked = _lock(task)
        if locked.status == TaskStatus.RUNNING:
            raise Conflict("A running task cannot be deleted; cancel it first.")
        journal_ids = result_services.result_files_forget(task_ids=[locked.pk])
        locked.delete()
    outcomes = result_services.pending_file_deletions_process(ids=journal_ids)
    return sum(outcome.error is not None for outcome in outcomes)
