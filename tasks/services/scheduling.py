"""Who may queue a run, and when it is sent to the workers: the owner lock, the caps, the daily quota, fair dispatch.

Lock order, everywhere: the owner's user row, then task rows. Queueing a run takes the owner
lock first (`owner_lock`), so every rule counted here (active runs, runs in the last 24 hours,
runs sent to the broker) is counted by one transaction at a time per user; a run's ending
(finish, fail, cancel, delete) locks only its task and hands the freed slot on *after* it
commits, in a transaction of its own that takes the owner lock (`run_handoff_on_commit`), so
no transaction ever holds a task and waits for an owner.

Fairness: the broker is first in, first out, so a user who queues ten runs would have them
all ahead of another user's one. Only TASKS_DISPATCH_PER_USER of a user's queued runs are sent
at a time; the others are *held* (`queued`, `enqueued_at` NULL) and sent, oldest first, as the
user's runs end. The sweeper dispatches held runs of users with a free slot too, so a hand-off
lost to a crash between the commit and the send heals itself. A run whose message could not be sent
(the broker down) is held again, so the first sweep after the broker is back sends it.
"""

import logging
import math
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, transaction
from django.db.models import Count, Q
from django.utils import timezone

import config
from config.errors import Conflict, QuotaExceeded
from tasks.models import ACTIVE_STATUSES, RunCharge, Task, TaskStatus

logger = logging.getLogger(__name__)

# The worker's job, by its registered name: sending by name keeps the services free of
# tasks.jobs, which imports the services (jobs -> services, never the reverse).
RUN_JOB = "tasks.run_task"
# The daily quota is a rolling window (docs/runner.md says why not a calendar day).
QUOTA_WINDOW = timedelta(hours=24)
HELD = Q(status=TaskStatus.QUEUED, enqueued_at__isnull=True)


# THE OWNER LOCK AND WHAT IS COUNTED UNDER IT
# ------------------------------------------------------------------------------


def owner_lock(owner_id: int) -> None:
    """Lock the owner's user row until the end of the transaction. Take it before any task row.

    FOR NO KEY UPDATE: it serialises this user's queueing without blocking rows that merely
    reference the user (a login inserting its session row takes FOR KEY SHARE, which it allows).
    """
    list(get_user_model().objects.select_for_update(no_key=True).filter(pk=owner_id).values_list("pk", flat=True))


@dataclass(frozen=True)
class OwnerLoad:
    """The owner's runs in flight, counted under the owner lock."""

    active: int  # queued or running
    held: int  # queued, not sent to the broker yet

    @property
    def dispatched(self) -> int:
        return self.active - self.held

    @property
    def has_free_slot(self) -> bool:
        limit = settings.TASKS_DISPATCH_PER_USER
        return not limit or self.dispatched < limit


def owner_load(owner_id: int) -> OwnerLoad:
    """One query. Only meaningful under `owner_lock` (a separate statement, after the lock: a
    subquery in the locking statement would read the snapshot taken before it waited)."""
    counts = Task.objects.filter(owner_id=owner_id, status__in=ACTIVE_STATUSES).aggregate(
        active=Count("pk"), held=Count("pk", filter=HELD)
    )
    return OwnerLoad(active=counts["active"], held=counts["held"])


def active_cap_check(load: OwnerLoad) -> None:
    """409 when the owner already has TASKS_MAX_ACTIVE_PER_USER runs queued or running (0: no cap)."""
    cap = settings.TASKS_MAX_ACTIVE_PER_USER
    if cap and load.active >= cap:
        raise Conflict(f"You already have {cap} tasks queued or running; wait for one to finish.")


def _in_words(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes = math.ceil(rest / 60) if hours else math.ceil(seconds / 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min" if seconds >= 60 else f"{seconds} s"


def daily_quota_check(owner_id: int, now) -> None:
    """429 (QuotaExceeded, with retry_after) when the owner queued TASKS_DAILY_RUNS_PER_USER runs
    in the last 24 hours (0: no quota). One count query; one more only when refusing."""
    quota = settings.TASKS_DAILY_RUNS_PER_USER
    if not quota:
        return
    in_window = RunCharge.objects.filter(owner_id=owner_id, charged_at__gt=now - QUOTA_WINDOW)
    used = in_window.count()
    if used < quota:
        return
    # A run may be queued again once `used - quota + 1` charges left the window: when the
    # (used - quota)-th oldest (0-based) turns 24 hours old.
    frees_from = in_window.order_by("charged_at").values_list("charged_at", flat=True)[used - quota]
    retry_after = math.ceil((frees_from + QUOTA_WINDOW - now).total_seconds())
    raise QuotaExceeded(
        f"Daily run quota reached: at most {quota} runs in any 24 hours. "
        f"The next run can be queued in {_in_words(max(retry_after, 1))}.",
        retry_after=retry_after,
    )


def run_charge(task: Task, now) -> None:
    """Count a queued run against its owner's daily quota (nothing is stored while the quota is lifted)."""
    if settings.TASKS_DAILY_RUNS_PER_USER:
        RunCharge.objects.create(owner_id=task.owner_id, task=task, run_number=task.run_number, charged_at=now)


def run_charges_prune(now) -> int:
    """Delete the charges that left the quota window; returns how many went."""
    deleted, _ = RunCharge.objects.filter(charged_at__lte=now - QUOTA_WINDOW).delete()
    return deleted


# SENDING
# ------------------------------------------------------------------------------


def _send_run(task_id: int, run_number: int, enqueued_at) -> None:
    try:
        config.celery_app.send_task(RUN_JOB, args=(task_id, run_number))
    except Exception:  # a broker outage must not turn a committed 202 into a 500
        logger.exception(
            "could not send run %s of task %s to the broker; it is held until a sweep", run_number, task_id
        )
        _hold_unsent(task_id, run_number, enqueued_at)


def _hold_unsent(task_id: int, run_number: int, enqueued_at) -> None:
    """A run whose message did not reach the broker goes back to held (no message exists), so the next sweep
    sends it with the held runs: within TASKS_SWEEP_INTERVAL of the broker's return, not TASKS_QUEUE_RESEND_AFTER.

    Conditional on the row being as this send left it: a worker that got the message after all (a publish that
    timed out after Redis took it) has claimed the run, and a held run's message is ignored by the worker
    anyway, so neither a loss nor a second run can come of it. No owner lock: moving a run from dispatched
    to held only frees a slot, which the sweeper fills.
    """
    try:
        Task.objects.filter(
            pk=task_id, run_number=run_number, status=TaskStatus.QUEUED, enqueued_at=enqueued_at
        ).update(dispatched_at=None, enqueued_at=None, updated_at=timezone.now())
    except DatabaseError:  # the database is down too: the run keeps its message time, resent after RESEND_AFTER
        logger.exception("could not hold unsent run %s of task %s", run_number, task_id)


def run_send_on_commit(task: Task) -> None:
    """Send the task's current run to the workers once the transaction commits.

    After the commit, so that a worker never looks for a row it cannot see yet; a message
    that is lost or duplicated is harmless (the sweeper resends, a second claim is a no-op),
    and one that cannot be sent is held again (`_hold_unsent`).
    """
    task_id, run_number, enqueued_at = task.pk, task.run_number, task.enqueued_at
    transaction.on_commit(lambda: _send_run(task_id, run_number, enqueued_at))


def mark_dispatched(task: Task, now) -> None:
    """The run takes one of its owner's slots: it is sent now (the caller saves and sends)."""
    task.dispatched_at = task.enqueued_at = now


def run_dispatch_held(*, owner_id: int) -> list[int]:
    """Send the owner's oldest held runs into their free slots; returns the task ids sent.

    Its own transaction, owner lock first. Safe to call any time, as often as wanted: with no
    free slot or nothing held it only counts.
    """
    with transaction.atomic():
        owner_lock(owner_id)
        return dispatch_held_locked(owner_id=owner_id, load=owner_load(owner_id))


def dispatch_held_locked(*, owner_id: int, load: OwnerLoad) -> list[int]:
    """`run_dispatch_held` for a caller that holds the owner lock and counted `load` under it."""
    limit = settings.TASKS_DISPATCH_PER_USER
    free = load.held if not limit else min(limit - load.dispatched, load.held)
    if free <= 0:
        return []
    now = timezone.now()
    sent = []
    # A held row that a cancel or delete holds is waited for, then skipped if no longer held.
    for held in Task.objects.select_for_update().filter(HELD, owner_id=owner_id).order_by("queued_at", "id")[:free]:
        mark_dispatched(held, now)
        held.save(update_fields=["dispatched_at", "enqueued_at", "updated_at"])
        run_send_on_commit(held)
        sent.append(held.pk)
    return sent


def _handoff(owner_id: int) -> None:
    sent = run_dispatch_held(owner_id=owner_id)
    if sent:
        logger.info("user %s: a run ended, sent held run(s) of task(s) %s", owner_id, sent)


def run_handoff_on_commit(owner_id: int) -> None:
    """One of the owner's runs is ending in this transaction: once it commits, send their next held run.

    `robust`: a failure here (the database gone for a moment) is logged, never raised into a
    committed cancel, delete or finish; the sweeper sends the held run later.
    """
    if settings.TASKS_DISPATCH_PER_USER:
        transaction.on_commit(lambda: _handoff(owner_id), robust=True)


def owners_with_free_slots_and_held_runs() -> list[int]:
    """Users with a held run and a free slot: a hand-off that never happened (one GROUP BY over runs in flight)."""
    limit = settings.TASKS_DISPATCH_PER_USER
    per_owner = (
        Task.objects.filter(status__in=ACTIVE_STATUSES)
        .values("owner_id")
        .annotate(held=Count("pk", filter=HELD), dispatched=Count("pk", filter=~HELD))
        .filter(held__gt=0)
    )
    if limit:
        per_owner = per_owner.filter(dispatched__lt=limit)
    return [row["owner_id"] for row in per_owner.order_by("owner_id")]
