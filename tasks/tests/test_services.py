"""The run lifecycle in the services: claim, idempotency, watch (cancel, progress, deadline), finish, sweeper."""

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image

from results.models import PendingFileDeletion, Result
from tasks import services
from tasks.models import Task, TaskStatus
from tasks.tests.factories import STEPS, TaskFactory, artifacts_for, record_result, report_for

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]


@pytest.fixture
def task(user):
    return TaskFactory(owner=user)


@pytest.fixture
def queued(task):
    return services.task_initiate(task=task, instruction="check", steps=STEPS)


def test_claim_starts_the_run_once(queued):
    claim = services.task_run_claim(task_id=queued.pk, run_number=1)

    assert claim is not None and claim.attempt == 1 and claim.steps == STEPS
    queued.refresh_from_db()
    assert queued.status == TaskStatus.RUNNING
    assert queued.started_at is not None and queued.heartbeat_at is not None
    assert (queued.progress_done, queued.progress_total) == (0, 2)
    # A second delivery of the same message, while the run goes on: nothing to do.
    assert services.task_run_claim(task_id=queued.pk, run_number=1) is None
    queued.refresh_from_db()
    assert queued.attempt == 1


def test_claim_ignores_other_runs_and_missing_tasks(queued):
    assert services.task_run_claim(task_id=queued.pk, run_number=2) is None
    assert services.task_run_claim(task_id=queued.pk + 1000, run_number=1) is None
    queued.refresh_from_db()
    assert queued.status == TaskStatus.QUEUED


def test_a_second_delivery_of_a_finished_run_changes_nothing(task):
    result = record_result(task)

    assert services.task_run_claim(task_id=task.pk, run_number=1) is None
    services.task_run_execute(task_id=task.pk, run_number=1)  # the job itself, delivered again

    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED and task.attempt == 1
    assert Result.objects.filter(task=task).get().pk == result.pk


def test_a_redelivery_after_the_worker_died_takes_the_run_over_once(queued, settings):
    settings.TASKS_MAX_ATTEMPTS = 2
    first = services.task_run_claim(task_id=queued.pk, run_number=1)
    stale = timezone.now() - timedelta(seconds=settings.TASKS_HEARTBEAT_TIMEOUT + 1)
    Task.objects.filter(pk=queued.pk).update(heartbeat_at=stale)

    second = services.task_run_claim(task_id=queued.pk, run_number=1)

    assert second is not None and second.attempt == 2
    # The presumed-dead first worker can no longer write anything.
    watch = services.RunWatch(first, deadline_seconds=60)
    assert not watch.beat() and watch.lost
    assert not services.task_run_fail(claim=first, error="late")
    Task.objects.filter(pk=queued.pk).update(heartbeat_at=stale)
    assert services.task_run_claim(task_id=queued.pk, run_number=1) is None  # attempts used up: failed
    queued.refresh_from_db()
    assert queued.status == TaskStatus.FAILED
    assert "stopped responding" in queued.error


def test_the_watch_reports_progress_and_notices_a_cancel(queued, settings):
    settings.TASKS_CANCEL_POLL_SECONDS = 0
    claim = services.task_run_claim(task_id=queued.pk, run_number=1)
    watch = services.RunWatch(claim, deadline_seconds=60)

    watch.on_step(1, 2)
    assert not watch.should_cancel()
    queued.refresh_from_db()
    assert (queued.progress_done, queued.progress_total) == (1, 2)

    services.task_cancel(task=queued)

    assert watch.should_cancel() and watch.lost
    queued.refresh_from_db()
    assert queued.status == TaskStatus.CANCELLED


def test_the_watch_reads_the_status_at_most_once_per_poll_interval(queued, settings, django_assert_num_queries):
    settings.TASKS_CANCEL_POLL_SECONDS = 60
    settings.TASKS_HEARTBEAT_SECONDS = 60
    watch = services.RunWatch(services.task_run_claim(task_id=queued.pk, run_number=1), deadline_seconds=60)

    with django_assert_num_queries(0):
        for _ in range(100):
            assert not watch.should_cancel()


def test_the_watch_stops_the_run_at_its_deadline(queued):
    watch = services.RunWatch(services.task_run_claim(task_id=queued.pk, run_number=1), deadline_seconds=0)

    assert watch.should_cancel() and watch.timed_out and not watch.lost


def test_a_cancelled_run_records_nothing_and_leaves_no_file(queued, media_root):
    claim = services.task_run_claim(task_id=queued.pk, run_number=1)
    services.task_cancel(task=queued)

    assert not services.task_run_record(claim=claim, report=report_for(claim), error="")

    queued.refresh_from_db()
    assert queued.status == TaskStatus.CANCELLED
    assert not Result.objects.exists()
    assert not list((media_root / "results").iterdir())
    assert not PendingFileDeletion.objects.exists()


@pytest.mark.parametrize(
    ("seen", "error", "expected", "status", "actual", "passed"),
    [
        (True, "", "success", TaskStatus.COMPLETED, "success", True),
        (False, "", "success", TaskStatus.COMPLETED, "failure", False),
        (False, "", "failure", TaskStatus.COMPLETED, "failure", True),
        (True, "", "failure", TaskStatus.COMPLETED, "success", False),
        # A run that could not be carried out never passes, even when failure was expected.
        (False, "Step 2 failed: timeout", "failure", TaskStatus.FAILED, "failure", False),
    ],
)
def test_finish_records_the_outcome(task, seen, error, expected, status, actual, passed):
    result = record_result(task, seen=seen, error=error, expected_status=expected)

    task.refresh_from_db()
    assert task.status == status and task.error == error
    assert task.finished_at is not None
    assert (result.actual_status, result.expected_status, result.passed) == (actual, expected, passed)
    assert [h["status"] for h in result.history] == ["ok", "failed" if error else "ok"]
    assert task.progress_done == 2


def test_the_result_files_are_stored_under_unguessable_names(task):
    result = record_result(task)

    files = {f.kind: f for f in result.files.all()}
    assert set(files) == {"gif", "script", "history"}
    for file in files.values():
        assert default_storage.exists(file.name)
        assert file.size == default_storage.size(file.name)
        assert len(file.name.rsplit("-", 1)[1].split(".")[0]) == 32  # 128 bits of HMAC
    with default_storage.open(files["gif"].name) as handle:
        gif = Image.open(handle)
        assert gif.format == "GIF" and gif.n_frames == 2
    assert "sync_playwright" in default_storage.open(files["script"].name).read().decode()
    # Every file is referenced by its Result: none is waiting to be deleted as an orphan.
    assert not PendingFileDeletion.objects.exists()


def test_a_new_run_replaces_the_previous_result_and_deletes_its_files(task, django_capture_on_commit_callbacks):
    from results import services as result_services

    first = record_result(task)
    old_names = sorted(first.files.values_list("name", flat=True))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        second = record_result(task)

    assert second.run_number == 2
    assert Result.objects.filter(task=task).count() == 1
    # The old files are journalled in the same transaction, deleted right after the commit.
    journalled = PendingFileDeletion.objects.filter(reason=PendingFileDeletion.Reason.REPLACED)
    assert sorted(journalled.values_list("name", flat=True)) == old_names
    # The run's message (initiate), the deletion of the old files, the hand-off of the run's dispatch slot.
    assert len(callbacks) == 3
    callbacks[1]()  # the deletion
    assert not any(default_storage.exists(name) for name in old_names)
    assert not PendingFileDeletion.objects.exists()
    assert all(default_storage.exists(f.name) for f in second.files.all())
    assert result_services.pending_file_deletions_process() == []


def test_files_of_a_run_that_died_before_recording_are_deleted_later(queued, media_root):
    from results import services as result_services

    claim = services.task_run_claim(task_id=queued.pk, run_number=1)
    files = result_services.result_files_upload(task_id=queued.pk, run_number=1, artifacts=artifacts_for(claim))
    # ... and the worker dies here: no Result row refers to the files.

    assert result_services.pending_file_deletions_process() == []  # within the grace period: left alone
    PendingFileDeletion.objects.update(not_before=timezone.now())
    outcomes = result_services.pending_file_deletions_process()

    assert sorted(o.name for o in outcomes if o.error is None) == sorted(f.name for f in files)
    assert not list((media_root / "results").iterdir())


# SWEEPER
# ------------------------------------------------------------------------------


def test_sweeper_fails_a_run_past_the_hard_time_limit(queued, settings):
    services.task_run_claim(task_id=queued.pk, run_number=1)
    long_ago = timezone.now() - timedelta(seconds=settings.TASKS_TIME_LIMIT + settings.TASKS_HEARTBEAT_SECONDS + 1)
    Task.objects.filter(pk=queued.pk).update(started_at=long_ago)  # heartbeat still fresh: a hung worker

    report = services.task_sweep_stale_runs()

    assert report.timed_out == [queued.pk]
    queued.refresh_from_db()
    assert queued.status == TaskStatus.FAILED
    assert f"{settings.TASKS_TIME_LIMIT}-second time limit" in queued.error


def test_sweeper_restarts_a_run_whose_worker_died_once_then_fails_it(
    queued, settings, django_capture_on_commit_callbacks
):
    settings.TASKS_MAX_ATTEMPTS = 2
    stale = timezone.now() - timedelta(seconds=settings.TASKS_HEARTBEAT_TIMEOUT + 1)
    services.task_run_claim(task_id=queued.pk, run_number=1)
    Task.objects.filter(pk=queued.pk).update(heartbeat_at=stale)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        report = services.task_sweep_stale_runs()

    assert report.restarted == [queued.pk] and len(callbacks) == 1
    queued.refresh_from_db()
    assert queued.status == TaskStatus.QUEUED

    assert services.task_run_claim(task_id=queued.pk, run_number=1).attempt == 2
    Task.objects.filter(pk=queued.pk).update(heartbeat_at=stale)
    report = services.task_sweep_stale_runs()

    assert report.worker_lost == [queued.pk]
    queued.refresh_from_db()
    assert queued.status == TaskStatus.FAILED
    assert "stopped responding (killed or crashed) 2 times" in queued.error


def test_sweeper_resends_a_lost_queued_run_then_gives_up(queued, settings, django_capture_on_commit_callbacks):
    Task.objects.filter(pk=queued.pk).update(
        enqueued_at=timezone.now() - timedelta(seconds=settings.TASKS_QUEUE_RESEND_AFTER + 1)
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        report = services.task_sweep_stale_runs()
    assert report.resent == [queued.pk] and len(callbacks) == 1
    assert services.task_sweep_stale_runs().resent == []  # not again until RESEND_AFTER has passed

    long_ago = timezone.now() - timedelta(seconds=settings.TASKS_QUEUE_TIMEOUT + 1)
    Task.objects.filter(pk=queued.pk).update(queued_at=long_ago, dispatched_at=long_ago, enqueued_at=long_ago)
    report = services.task_sweep_stale_runs()

    assert report.never_started == [queued.pk]
    queued.refresh_from_db()
    assert queued.status == TaskStatus.FAILED
    assert "No worker started this run" in queued.error


def test_sweeper_leaves_healthy_runs_alone(queued, user):
    other = services.task_initiate(task=TaskFactory(owner=user), instruction="x", steps=STEPS)
    services.task_run_claim(task_id=other.pk, run_number=1)

    report = services.task_sweep_stale_runs()

    assert not any(vars(report).values())
    assert set(Task.objects.values_list("status", flat=True)) == {TaskStatus.QUEUED, TaskStatus.RUNNING}
