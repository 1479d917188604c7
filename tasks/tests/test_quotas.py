"""The per-user limits on queueing runs: the daily run quota (429 + Retry-After), and the active cap and the
quota under concurrent initiates of different tasks (the owner lock), on PostgreSQL with real connections."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from tasks import services
from tasks.models import RunCharge, Task, TaskStatus
from tasks.services.scheduling import QUOTA_WINDOW
from tasks.tests.factories import STEPS, TaskFactory, record_result

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]

RUN = {"instruction": "check", "steps": STEPS}


def initiate_url(task) -> str:
    return f"/api/v1/tasks/{task.pk}/initiate"


@pytest.fixture
def quota(settings):
    settings.TASKS_DAILY_RUNS_PER_USER = 3
    settings.TASKS_MAX_ACTIVE_PER_USER = 0  # these tests are about the quota alone
    return 3


def charge(user, *, ago: timedelta) -> RunCharge:
    return RunCharge.objects.create(owner=user, run_number=1, charged_at=timezone.now() - ago)


# THE DAILY QUOTA
# ------------------------------------------------------------------------------


def test_each_initiate_is_charged_and_the_one_over_the_quota_is_429_changing_nothing(
    auth_client, user, quota, django_capture_on_commit_callbacks
):
    tasks = [TaskFactory(owner=user) for _ in range(quota + 1)]
    for task in tasks[:quota]:
        assert auth_client.patch(initiate_url(task), RUN, format="json").status_code == 202
    assert RunCharge.objects.filter(owner=user).count() == quota

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = auth_client.patch(initiate_url(tasks[-1]), RUN, format="json")

    assert response.status_code == 429
    assert response.json() == {"detail": response.json()["detail"], "code": "quota_exceeded"}
    assert "Daily run quota reached: at most 3 runs in any 24 hours" in response.json()["detail"]
    # The window is rolling: the first charge leaves it 24 hours after it was made.
    retry_after = int(response["Retry-After"])
    assert QUOTA_WINDOW.total_seconds() - 60 < retry_after <= QUOTA_WINDOW.total_seconds()
    refused = Task.objects.get(pk=tasks[-1].pk)
    assert (refused.status, refused.run_number, refused.steps, refused.instruction) == ("created", 0, [], "")
    assert RunCharge.objects.filter(owner=user).count() == quota
    assert callbacks == []  # nothing sent, nothing handed off


def test_retry_after_is_when_the_oldest_charge_leaves_the_window(auth_client, user, quota):
    charge(user, ago=timedelta(hours=23, minutes=30))  # frees in 30 minutes
    charge(user, ago=timedelta(hours=2))
    charge(user, ago=timedelta(minutes=1))
    charge(user, ago=timedelta(hours=24, seconds=1))  # out of the window already: not counted

    response = auth_client.patch(initiate_url(TaskFactory(owner=user)), RUN, format="json")

    assert response.status_code == 429
    assert 29 * 60 < int(response["Retry-After"]) <= 30 * 60
    assert "The next run can be queued in 30 min" in response.json()["detail"]


def test_with_more_charges_than_the_quota_retry_after_waits_for_enough_of_them_to_leave(
    auth_client, user, quota, settings
):
    for hours in (23, 22, 21, 20):  # four charges, and the quota lowered to two meanwhile
        charge(user, ago=timedelta(hours=hours))
    settings.TASKS_DAILY_RUNS_PER_USER = 2

    response = auth_client.patch(initiate_url(TaskFactory(owner=user)), RUN, format="json")

    # Three must leave before a run fits under two: the one charged 21 hours ago is the last of them.
    assert response.status_code == 429
    assert 3 * 3600 - 60 < int(response["Retry-After"]) <= 3 * 3600


def test_a_charge_older_than_24_hours_frees_its_run_and_the_sweeper_deletes_it(auth_client, user, quota):
    for _ in range(quota):
        charge(user, ago=QUOTA_WINDOW + timedelta(seconds=5))
    recent = charge(user, ago=timedelta(hours=1))

    assert auth_client.patch(initiate_url(TaskFactory(owner=user)), RUN, format="json").status_code == 202

    services.task_sweep_stale_runs()
    assert set(RunCharge.objects.values_list("pk", flat=True)) == {
        recent.pk,
        RunCharge.objects.filter(owner=user).latest("charged_at").pk,
    }


def test_re_initiating_the_same_task_counts_each_run(auth_client, user, quota):
    task = TaskFactory(owner=user)
    for _ in range(quota):
        record_result(task)  # initiate, then finish, as the worker would

    response = auth_client.patch(initiate_url(task), RUN, format="json")

    assert response.status_code == 429
    assert list(RunCharge.objects.filter(task=task).order_by("run_number").values_list("run_number", flat=True)) == [
        1,
        2,
        3,
    ]


def test_cancelling_or_deleting_does_not_give_the_runs_back(auth_client, user, quota):
    first, second, third = (TaskFactory(owner=user) for _ in range(3))
    for task in (first, second, third):
        services.task_initiate(task=task, **RUN)
    services.task_cancel(task=first)
    assert auth_client.delete(f"/api/v1/tasks/{second.pk}").status_code == 204

    response = auth_client.patch(initiate_url(first), RUN, format="json")

    assert response.status_code == 429
    assert RunCharge.objects.filter(owner=user).count() == 3
    assert RunCharge.objects.filter(owner=user, task=None).count() == 1  # the deleted task's run still counts


def test_the_quota_is_per_user(auth_client, user, make_user, quota):
    other = make_user()
    for _ in range(quota):
        charge(other, ago=timedelta(minutes=5))

    assert auth_client.patch(initiate_url(TaskFactory(owner=user)), RUN, format="json").status_code == 202


def test_zero_lifts_the_quota_and_stores_nothing(auth_client, user, settings):
    settings.TASKS_DAILY_RUNS_PER_USER = 0
    settings.TASKS_MAX_ACTIVE_PER_USER = 0
    for _ in range(5):
        assert auth_client.patch(initiate_url(TaskFactory(owner=user)), RUN, format="json").status_code == 202
    assert not RunCharge.objects.exists()


def test_an_admins_rerun_is_neither_charged_nor_refused(client, make_user, user, quota):
    finished = record_result(TaskFactory(owner=user)).task
    for _ in range(quota - 1):
        services.task_initiate(task=TaskFactory(owner=user), **RUN)  # the quota is used up now
    client.force_login(make_user("root", is_staff=True, is_superuser=True))

    response = client.post(
        reverse("admin:tasks_task_changelist"), {"action": "rerun", "_selected_action": [finished.pk]}, follow=True
    )

    assert response.status_code == 200 and "Queued 1 task(s)." in response.text
    assert Task.objects.get(pk=finished.pk).run_number == 2
    assert RunCharge.objects.filter(owner=user).count() == quota
    ledger = client.get(reverse("admin:tasks_runcharge_changelist"), {"q": user.username})
    assert ledger.status_code == 200 and f"#{finished.pk} " in ledger.text


def test_initiate_costs_a_fixed_number_of_queries(auth_client, user, quota, django_assert_num_queries):
    warm = TaskFactory(owner=user)
    assert auth_client.patch(initiate_url(warm), RUN, format="json").status_code == 202  # the session is cached now
    task = TaskFactory(owner=user)

    # The task (get_object), SAVEPOINT, the owner lock, the task lock, the owner's runs in flight
    # (one aggregate: cap and dispatch), the quota count, the UPDATE, the charge INSERT, RELEASE.
    with django_assert_num_queries(9):
        assert auth_client.patch(initiate_url(task), RUN, format="json").status_code == 202


def test_the_schema_declares_every_answer_of_initiate():
    operation = SchemaGenerator().get_schema(request=None, public=True)["paths"]["/api/v1/tasks/{id}/initiate"]
    responses = operation["patch"]["responses"]
    assert {"202", "400", "404", "409", "429"} <= set(responses)
    assert "Retry-After" in responses["429"]["headers"]
    assert responses["429"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


# UNDER CONCURRENCY: the owner lock
# ------------------------------------------------------------------------------


def run_together(calls) -> list:
    """Run the callables in threads released at once, each on its own database connection."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def worker(index, call):
        try:
            barrier.wait(timeout=30)
            results[index] = call()
        except Exception as error:  # noqa: BLE001 (reported by the assertions)
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a request hung (deadlock?)"
    return results


def concurrent_initiates(client_for, token, tasks) -> list:
    def initiate_one(task):
        return client_for(token).patch(initiate_url(task), RUN, format="json").status_code

    return run_together([lambda task=task: initiate_one(task) for task in tasks])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_active_cap_holds_under_concurrent_initiates_of_different_tasks(user, login, client_for, settings):
    settings.TASKS_MAX_ACTIVE_PER_USER = cap = 4
    tasks = [TaskFactory(owner=user) for _ in range(2 * cap)]

    codes = concurrent_initiates(client_for, login(user).access, tasks)

    assert sorted(codes) == [202] * cap + [409] * cap, codes
    assert Task.objects.filter(owner=user, status=TaskStatus.QUEUED).count() == cap


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_daily_quota_holds_under_concurrent_initiates(user, login, client_for, quota):
    tasks = [TaskFactory(owner=user) for _ in range(2 * quota)]

    codes = concurrent_initiates(client_for, login(user).access, tasks)

    assert sorted(codes) == [202] * quota + [429] * quota, codes
    assert RunCharge.objects.filter(owner=user).count() == quota == Task.objects.filter(run_number=1).count()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_initiates_cancels_and_finishes_of_one_user_together_never_deadlock(user, login, client_for, settings):
    """Initiates lock owner then task; cancels, deletes and finishes lock the task and hand off after commit."""
    settings.TASKS_MAX_ACTIVE_PER_USER = 0
    settings.TASKS_DISPATCH_PER_USER = 0  # four runs in flight: two running, two sent
    running = [TaskFactory(owner=user) for _ in range(4)]
    for task in running:
        services.task_initiate(task=task, **RUN)
    claims = [services.task_run_claim(task_id=task.pk, run_number=1) for task in running[:2]]
    settings.TASKS_DISPATCH_PER_USER = 1  # so the fresh runs are held, until the four have ended
    fresh = [TaskFactory(owner=user) for _ in range(6)]
    token = login(user).access

    calls = [lambda t=t: client_for(token).patch(initiate_url(t), RUN, format="json").status_code for t in fresh]
    calls += [lambda t=t: client_for(token).post(f"/api/v1/tasks/{t.pk}/cancel").status_code for t in running]
    calls += [lambda c=c: services.task_run_fail(claim=c, error="stopped") for c in claims]
    results = run_together(calls)

    assert results[:6] == [202] * 6, results
    assert all(code in (202, 409) for code in results[6:10]), results  # a run failed first is 409 to cancel
    assert all(not isinstance(result, Exception) for result in results), results
    # Every slot freed was handed on: one of the user's runs is sent, the others held.
    queued = Task.objects.filter(owner=user, status=TaskStatus.QUEUED)
    assert queued.count() == 6 and queued.filter(enqueued_at__isnull=False).count() == 1
