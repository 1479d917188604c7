"""A task's lifecycle as its owner (API) and admins drive it: create, settings, plan, initiate, re-run, cancel, delete.

A run goes created/finished -> queued here (`task_initiate`, `task_rerun`: owner lock, then
row lock; message sent after commit, or held for fairness); the worker takes it from there
(`tasks.services.runs`). The caps, the quota and the dispatch are `tasks.services.scheduling`.
"""

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import Conflict, InvalidInput
from results import services as result_services
from tasks import runner
from tasks.models import ExpectedStatus, LLMProvider, Task, TaskStatus
from tasks.services import provider_keys, scheduling

logger = logging.getLogger(__name__)

SETTINGS_FROZEN = "Settings cannot change while the task is queued or running."
ALREADY_ACTIVE = "Task is already queued or running."
START_URL_REQUIRED = "Required when no steps are given: the planned run opens this page first."
AGENT_STEPS_REFUSED = (
    "An agent run chooses its own actions: give an instruction (and optionally a start_url), not steps; "
    'or set agent-settings {"llm_provider": "none"} to run explicit steps.'
)
MODEL_REQUIRED = "Set agent-settings llm_model: this provider has no default model."
UNSET = object()  # an agent setting that was not given (None is a value: "no key chosen")


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


def task_agent_settings_update(
    *, task: Task, llm_provider=None, llm_model=None, temperature=None, max_steps=None, provider_key_id=UNSET
) -> Task:
    """Change the agent settings; 409 while a run is queued or running.

    ``provider_key_id``: one of the owner's provider keys (400 otherwise), or None for "the newest
    key of the provider, else the server's"; whether it fits the provider is checked at initiate.
    """
    if provider_key_id is not UNSET and provider_key_id is not None:
        provider_keys.provider_key_owned_check(owner_id=task.owner_id, provider_key_id=provider_key_id)
    task = _settings_update(
        task=task, llm_provider=llm_provider, llm_model=llm_model, temperature=temperature, max_steps=max_steps
    )
    if provider_key_id is not UNSET and provider_key_id != task.provider_key_id:
        with transaction.atomic():
            locked = _lock(task)
            if locked.is_active:
                raise Conflict(SETTINGS_FROZEN)
            locked.provider_key_id = provider_key_id
            locked.save(update_fields=["provider_key_id", "updated_at"])
        task = locked
    return task


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


def task_is_agent_run(task: Task) -> bool:
    return task.llm_provider != LLMProvider.NONE


def _agent_plan(task: Task) -> list[dict]:
    """An agent run's steps before the model's: the start page, when given. Explicit steps are refused."""
    if task.steps not in (None, []):
        raise InvalidInput({"steps": [AGENT_STEPS_REFUSED]})
    if not task.start_url:
        return []
    if problem := runner.url_problem(task.start_url):
        raise InvalidInput({"start_url": [problem]})
    return [{"action": "goto", "url": task.start_url.strip()}]


def task_plan(task: Task) -> list[dict]:
    """The steps a run of the task's definition executes: its own, validated and normalised, or a plan
    built from its fields; for an agent run, only the start page (the model chooses the rest).
    Raises InvalidInput (400) naming the field, or each bad step by index."""
    if task_is_agent_run(task):
        return _agent_plan(task)
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


def task_run_size(task: Task, planned: list[dict]) -> int:
    """How many steps a run may take: its plan, plus max_steps for the model of an agent run."""
    return len(planned) + (task.max_steps if task_is_agent_run(task) else 0)


def _queue_run(*, locked: Task, charged: bool) -> None:
    """Move a locked, finished task to a new queued run of its current definition.

    The caller holds the owner lock (taken before the task's). The definition is validated
    first (400), then the state (409), then the daily quota (429, when `charged`) and the
    active cap (409). The run is sent to the workers after commit if its owner has a free
    dispatch slot, else held until one of their runs ends.
    """
    planned = task_plan(locked)
    if task_is_agent_run(locked):  # a model and a key must be there now: a run that could only fail is not queued
        if not (locked.llm_model or settings.TASKS_AGENT_DEFAULT_MODELS.get(locked.llm_provider)):
            raise InvalidInput({"llm_model": [MODEL_REQUIRED]})
        provider_keys.provider_key_check(
            owner_id=locked.owner_id, provider=locked.llm_provider, provider_key_id=locked.provider_key_id
        )
    if locked.is_active:
        raise Conflict(ALREADY_ACTIVE)
    if locked.steps:
        locked.steps = planned  # explicit steps are stored normalised (actions lower-cased, URLs stripped)
    now = timezone.now()
    load = scheduling.owner_load(locked.owner_id)
    if charged:
        scheduling.daily_quota_check(locked.owner_id, now)
    scheduling.active_cap_check(load)
    locked.status = TaskStatus.QUEUED
    locked.run_number += 1
    locked.attempt = 0
    locked.progress_done = 0
    locked.progress_total = task_run_size(locked, planned)
    locked.error = ""
    locked.queued_at = now
    locked.dispatched_at = locked.enqueued_at = None  # held, unless a slot is free below
    locked.started_at = locked.heartbeat_at = locked.finished_at = None
    send_now = load.has_free_slot and not load.held  # held runs of this owner are older: they go first
    if send_now:
        scheduling.mark_dispatched(locked, now)
    locked.save()
    if send_now:
        scheduling.run_send_on_commit(locked)
    elif load.has_free_slot:  # a hand-off was lost (the sweeper would heal it too): oldest first
        scheduling.dispatch_held_locked(owner_id=locked.owner_id, load=scheduling.owner_load(locked.owner_id))
    if charged:
        scheduling.run_charge(locked, now)


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

    The owner lock makes concurrent initiates of the owner's tasks count the cap and the quota
    one at a time; the row lock makes concurrent initiates of one task queue exactly one run.
    Invalid steps or plan fields, or URLs the browser may not reach, are a 400 (InvalidInput),
    a used-up daily quota a 429 (QuotaExceeded); both change nothing.
    """
    task_egress_check(start_url=start_url, steps=steps)
    with transaction.atomic():
        scheduling.owner_lock(task.owner_id)
        locked = _lock(task)
        locked.instruction = instruction
        locked.description = description
        locked.start_url = start_url
        locked.steps = [] if steps is None else steps
        locked.search_input_input = search_input_input
        locked.search_input_action = search_input_action
        locked.expected_outcome = expected_outcome
        locked.expected_status = expected_status
        _queue_run(locked=locked, charged=True)
    return locked


def task_rerun(*, task: Task) -> Task:
    """Run the task again with its last definition (the admin's re-run action).

    Not charged to the owner's daily quota, nor refused by it: the quota bounds what a user
    asks of the service, and an operator re-running runs (after an outage, to check a fix)
    should neither spend a user's allowance nor be stopped by it. The active cap and the fair
    dispatch still apply: they protect the workers, whoever asked.
    """
    task_egress_check(start_url=task.start_url, steps=task.steps)
    with transaction.atomic():
        scheduling.owner_lock(task.owner_id)
        locked = _lock(task)
        _queue_run(locked=locked, charged=False)
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
        scheduling.run_handoff_on_commit(locked.owner_id)
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
        if locked.is_active:  # a queued run leaves: its slot, or its place among the held, frees
            scheduling.run_handoff_on_commit(locked.owner_id)
        locked.delete()
    outcomes = result_services.pending_file_deletions_process(ids=journal_ids)
    return sum(outcome.error is not None for outcome in outcomes)
