"""The beat job's decisions: nothing stays queued or running forever."""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tasks.models import Task, TaskStatus
from tasks.services.runs import fail_locked, time_limit_error, worker_lost_error
from tasks.services.scheduling import (
    owners_with_free_slots_and_held_runs,
    run_charges_prune,
    run_dispatch_held,
    run_send_on_commit,
)

logger = logging.getLogger(__name__)


@dataclass
class SweepReport:
    """The task ids each rule of a sweep acted on."""

    timed_out: list[int] = field(default_factory=list)
    worker_lost: list[int] = field(default_factory=list)
    restarted: list[int] = field(default_factory=list)
    resent: list[int] = field(default_factory=list)
    never_started: list[int] = field(default_factory=list)
    dispatched: list[int] = field(default_factory=list)  # held runs whose hand-off never came


def _locked(**filters):
    """The tasks matching `filters`, locked; rows another sweep holds are skipped, so concurrent
    sweeps (two beats) share the work and never repeat it. Call inside a transaction."""
    return Task.objects.select_for_update(skip_locked=True).filter(**filters)


def _fail_past_hard_limit(report: SweepReport, now) -> None:
    hard_limit = settings.TASKS_TIME_LIMIT
    past_limit = now - timedelta(seconds=hard_limit + settings.TASKS_HEARTBEAT_SECONDS)
    with transaction.atomic():
        for locked in _locked(status=TaskStatus.RUNNING, started_at__lt=past_limit):
            fail_locked(locked, time_limit_error(hard_limit))
            report.timed_out.append(locked.pk)


def _restart_or_fail_orphans(report: SweepReport, now) -> None:
    stale = now - timedelta(seconds=settings.TASKS_HEARTBEAT_TIMEOUT)
    with transaction.atomic():
        for locked in _locked(status=TaskStatus.RUNNING, heartbeat_at__lt=stale):
            if locked.attempt >= settings.TASKS_MAX_ATTEMPTS:
                fail_locked(locked, worker_lost_error(locked.attempt))
                report.worker_lost.append(locked.pk)
                continue
            locked.status = TaskStatus.QUEUED  # it keeps its dispatch slot: sent again at once, never held
            locked.dispatched_at = locked.enqueued_at = now
            locked.progress_done = 0
            locked.save(update_fields=["status", "dispatched_at", "enqueued_at", "progress_done", "updated_at"])
            run_send_on_commit(locked)
            report.restarted.append(locked.pk)


def _resend_or_give_up_queued(report: SweepReport, now) -> None:
    resend_before = now - timedelta(seconds=settings.TASKS_QUEUE_RESEND_AFTER)
    give_up_before = now - timedelta(seconds=settings.TASKS_QUEUE_TIMEOUT)
    with transaction.atomic():
        # Held runs (enqueued_at NULL) are not here: no message of theirs can be lost. The timeout
        # counts from the dispatch, since waiting behind the owner's own runs is no sign of a missing worker.
        for locked in _locked(status=TaskStatus.QUEUED, enqueued_at__lt=resend_before):
            if locked.dispatched_at is None or locked.dispatched_at < give_up_before:
                fail_locked(
                    locked,
                    f"No worker started this run within {settings.TASKS_QUEUE_TIMEOUT} seconds; "
                    "is a Celery worker running?",
                )
                report.never_started.append(locked.pk)
                continue
            locked.enqueued_at = now
            locked.save(update_fields=["enqueued_at", "updated_at"])
            run_send_on_commit(locked)
            report.resent.append(locked.pk)


def _dispatch_held_runs_with_a_free_slot(report: SweepReport) -> None:
    for owner_id in owners_with_free_slots_and_held_runs():
        report.dispatched.extend(run_dispatch_held(owner_id=owner_id))


def task_sweep_stale_runs() -> SweepReport:
    """Nothing stays queued or running forever. Runs periodically (beat); safe to run concurrently.

    - running past the hard time limit -> failed, the error says so;
    - running with a stale heartbeat (its worker died) -> queued again while attempts
      remain (the run is re-run once by default), else failed;
    - queued and not taken for TASKS_QUEUE_RESEND_AFTER -> the message is sent again (a
      duplicate is a no-op); not taken TASKS_QUEUE_TIMEOUT after it was dispatched -> failed;
    - held (fairness) while its owner has a free dispatch slot -> sent, oldest first (a hand-off
      lost between a commit and its callback);
    - daily-quota charges older than the 24-hour window -> deleted.
    """
    now = timezone.now()
    report = SweepReport()
    _fail_past_hard_limit(report, now)
    _restart_or_fail_orphans(report, now)
    _resend_or_give_up_queued(report, now)
    _dispatch_held_runs_with_a_free_slot(report)
    run_charges_prune(now)
    if any(vars(report).values()):
        logger.warning("sweep: %s", report)
    return report
