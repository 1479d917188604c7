"""Fair dispatch: a user's queued runs beyond TASKS_DISPATCH_PER_USER are held in the database and sent, oldest
first, as that user's runs end; the sweeper heals a lost hand-off. End to end with a real worker process."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tasks import services
from tasks.models import Task, TaskStatus
from tasks.tests.factories import (
    FINISHED,
    STEPS,
    TaskFactory,
    create_task,
    initiate,
    report_for,
    wait_for_status,
    wait_until,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]

RUN = {"instruction": "check", "steps": STEPS}


@pytest.fixture(autouse=True)
def limits(settings):
    settings.TASKS_DISPATCH_PER_USER = 2
    settings.TASKS_MAX_ACTIVE_PER_USER = 0
    settings.TASKS_DAILY_RUNS_PER_USER = 0


def queue(owner, count: int) -> list[Task]:
    return [services.task_initiate(task=TaskFactory(owner=owner), **RUN) for _ in range(count)]


def sent(tasks) -> list[bool]:
    """Whether each task's current run was handed to the broker (False: held)."""
    by_pk = {task.pk: task for task in Task.objects.filter(pk__in=[task.pk for task in tasks])}
    return [by_pk[task.pk].enqueued_at is not None for task in tasks]


def handoffs(callbacks) -> list:
    """The hand-off callbacks among those a transaction registered (the sends are left unsent)."""
    return [callback for callback in callbacks if "run_handoff_on_commit" in callback.__qualname__]


def end_and_hand_off(django_capture_on_commit_callbacks, end) -> None:
    """Run `end()` and then, as after its commit, the hand-offs it registered."""
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        end()
    assert len(handoffs(callbacks)) == 1
    for callback in handoffs(callbacks):
        callback()


def test_only_the_dispatch_limit_of_a_users_runs_is_sent_the_rest_is_held(
    user, make_user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        mine = queue(user, 4)
    theirs = queue(make_user(), 1)

    assert sent(mine) == [True, True, False, False]
    assert len(callbacks) == 2  # two messages, and nothing for the held runs
    assert sent(theirs) == [True]  # another user's run is not behind mine
    held = Task.objects.get(pk=mine[2].pk)
    assert (held.status, held.queued_at is not None, held.dispatched_at) == (TaskStatus.QUEUED, True, None)


@pytest.mark.parametrize("ending", ["finish", "fail", "cancel", "delete", "sweeper"])
def test_each_way_a_run_ends_sends_the_owners_oldest_held_run(
    ending, user, settings, django_capture_on_commit_callbacks
):
    first, second, third, fourth = queue(user, 4)
    claim = services.task_run_claim(task_id=first.pk, run_number=1)
    if ending == "delete":
        claim = None  # a running task cannot be deleted: delete the queued, sent one
    endings = {
        "finish": lambda: services.task_run_record(claim=claim, report=report_for(claim), error=""),
        "fail": lambda: services.task_run_fail(claim=claim, error="crashed"),
        "cancel": lambda: services.task_cancel(task=first),
        "delete": lambda: services.task_delete(task=second),
        "sweeper": lambda: services.task_sweep_stale_runs(),
    }
    if ending == "sweeper":  # the worker vanished and the run has no attempt left
        settings.TASKS_MAX_ATTEMPTS = 1
        stale = timezone.now() - timedelta(seconds=settings.TASKS_HEARTBEAT_TIMEOUT + 1)
        Task.objects.filter(pk=first.pk).update(heartbeat_at=stale)

    end_and_hand_off(django_capture_on_commit_callbacks, endings[ending])

    assert sent([third, fourth]) == [True, False]
    assert Task.objects.get(pk=third.pk).dispatched_at is not None


def test_held_runs_go_in_the_order_they_were_queued_and_a_new_run_waits_behind_them(
    user, django_capture_on_commit_callbacks
):
    first, second, third = queue(user, 3)
    services.task_cancel(task=first)  # its hand-off is lost (never run): the slot stays free
    fourth = queue(user, 1)[0]

    # The free slot goes to the oldest held run, not to the newcomer.
    assert sent([second, third, fourth]) == [True, True, False]


def test_a_stray_message_for_a_held_run_does_not_start_it(user):
    held = queue(user, 3)[2]

    assert services.task_run_claim(task_id=held.pk, run_number=1) is None
    assert Task.objects.get(pk=held.pk).status == TaskStatus.QUEUED


def test_the_sweeper_sends_held_runs_whose_hand_off_was_lost(user, make_user, django_capture_on_commit_callbacks):
    mine = queue(user, 3)
    full = queue(make_user(), 3)  # this user's slots are taken: nothing of theirs is sent
    services.task_cancel(task=mine[0])  # the hand-off callback never runs (a crash after the commit)
    assert sent(mine) == [True, True, False]

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        report = services.task_sweep_stale_runs()

    assert report.dispatched == [mine[2].pk]
    assert len(callbacks) == 1  # its message
    assert sent(full) == [True, True, False]
    assert services.task_sweep_stale_runs().dispatched == []  # nothing more to heal


def test_held_runs_are_never_resent_nor_given_up_and_the_queue_timeout_counts_from_the_dispatch(user, settings):
    first, second, third = queue(user, 3)
    long_ago = timezone.now() - timedelta(seconds=settings.TASKS_QUEUE_TIMEOUT + 60)
    Task.objects.filter(pk__in=[first.pk, second.pk, third.pk]).update(queued_at=long_ago)
    Task.objects.filter(pk__in=[first.pk, second.pk]).update(enqueued_at=long_ago, dispatched_at=long_ago)
    Task.objects.filter(pk=second.pk).update(dispatched_at=timezone.now())  # its message was lost, recently sent

    report = services.task_sweep_stale_runs()

    # The first waited for a worker past the timeout: failed. The second is resent (dispatched
    # recently, though queued long ago). The third, held all this time, takes the freed slot.
    assert (report.never_started, report.resent) == ([first.pk], [second.pk])
    statuses = dict(Task.objects.values_list("pk", "status"))
    assert (statuses[first.pk], statuses[second.pk], statuses[third.pk]) == ("failed", "queued", "queued")
    assert sent([third]) == [True]


def test_zero_sends_every_run_at_once_and_the_sweeper_releases_runs_held_before(user, settings):
    held = queue(user, 3)[2]
    settings.TASKS_DISPATCH_PER_USER = 0

    assert services.task_sweep_stale_runs().dispatched == [held.pk]
    assert sent(queue(user, 3)) == [True, True, True]


def test_a_run_restarted_by_the_sweeper_keeps_its_slot(user, settings):
    first, second, third = queue(user, 3)
    services.task_run_claim(task_id=first.pk, run_number=1)
    stale = timezone.now() - timedelta(seconds=settings.TASKS_HEARTBEAT_TIMEOUT + 1)
    Task.objects.filter(pk=first.pk).update(heartbeat_at=stale)

    report = services.task_sweep_stale_runs()

    assert report.restarted == [first.pk] and report.dispatched == []
    assert sent([first, second, third]) == [True, True, False]


# END TO END: a real worker process
# ------------------------------------------------------------------------------


@pytest.mark.worker
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_one_users_ten_runs_do_not_starve_another_users_one(
    make_user, login, client_for, local_site, start_worker, settings
):
    settings.TASKS_DISPATCH_PER_USER = 2  # the default, on both sides: the worker reads it from the environment
    start_worker(concurrency=1, TASKS_DISPATCH_PER_USER="2")
    alice, bob = client_for(login(make_user()).access), client_for(login(make_user()).access)
    run = {"steps": [{"action": "goto", "url": local_site.url("/")}, {"action": "expect_text", "text": "Search"}]}

    alices = [create_task(alice, f"A{n}") for n in range(10)]
    for task_id in alices:
        initiate(alice, task_id, run)
    bobs = create_task(bob, "B")
    initiate(bob, bobs, run)

    assert wait_for_status(bob, bobs, FINISHED)["status"] == "completed"
    # Alice's runs go on being handed off, one ending at a time.
    wait_until(
        lambda: Task.objects.filter(pk__in=alices, status="completed").count() >= 3, timeout=90, what="A's third run"
    )
    started = {task.pk: task.started_at for task in Task.objects.filter(pk__in=[*alices, bobs])}
    alices_starts = sorted(started[pk] for pk in alices if started[pk])
    assert started[bobs] < alices_starts[2], (started[bobs], alices_starts[:3])
