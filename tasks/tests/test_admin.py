"""The admin: task filters and the re-run/cancel actions (same services as the API), results with their GIF."""

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse

from results.models import Result
from tasks import services
from tasks.models import Task, TaskStatus
from tasks.tests.factories import STEPS, TaskFactory, record_result

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def test_task_changelist_filters_by_status(admin_client, user):
    done = record_result(TaskFactory(owner=user, task_name="finished one")).task
    TaskFactory(owner=user, task_name="fresh one")

    response = admin_client.get(reverse("admin:tasks_task_changelist"), {"status__exact": "completed"})

    assert response.status_code == 200
    assert done.task_name in response.text and "fresh one" not in response.text


def test_rerun_action_queues_a_new_run_and_skips_active_tasks(admin_client, user, django_capture_on_commit_callbacks):
    finished = record_result(TaskFactory(owner=user)).task
    queued = services.task_initiate(task=TaskFactory(owner=user), instruction="x", steps=STEPS)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post(
            reverse("admin:tasks_task_changelist"),
            {"action": "rerun", "_selected_action": [finished.pk, queued.pk]},
            follow=True,
        )

    assert response.status_code == 200
    assert "already queued or running" in response.text
    finished.refresh_from_db()
    assert (finished.status, finished.run_number, finished.steps) == (TaskStatus.QUEUED, 2, STEPS)
    assert Task.objects.get(pk=queued.pk).run_number == 1
    assert len(callbacks) == 1


def test_cancel_action(admin_client, user):
    queued = services.task_initiate(task=TaskFactory(owner=user), instruction="x", steps=STEPS)

    admin_client.post(reverse("admin:tasks_task_changelist"), {"action": "cancel", "_selected_action": [queued.pk]})

    assert Task.objects.get(pk=queued.pk).status == TaskStatus.CANCELLED


def test_deleting_a_task_in_the_admin_deletes_its_files(admin_client, user):
    result = record_result(TaskFactory(owner=user))
    names = list(result.files.values_list("name", flat=True))

    admin_client.post(reverse("admin:tasks_task_delete", args=[result.task_id]), {"post": "yes"})

    assert not Task.objects.filter(pk=result.task_id).exists()
    assert not any(default_storage.exists(name) for name in names)


def test_result_page_shows_the_gif_inline_and_links_the_script(admin_client, user):
    result = record_result(TaskFactory(owner=user))
    gif_url = reverse("admin:results_result_file", args=[result.pk, "gif"])
    script_url = reverse("admin:results_result_file", args=[result.pk, "script"])

    page = admin_client.get(reverse("admin:results_result_change", args=[result.pk]))
    gif = admin_client.get(gif_url)

    assert page.status_code == 200
    assert f'<img src="{gif_url}"' in page.text and f'href="{script_url}"' in page.text
    assert gif.status_code == 200 and gif["Content-Type"] == "image/gif"
    assert b"".join(gif.streaming_content)[:6] == b"GIF89a"


def test_result_files_in_the_admin_need_staff(client, user, password):
    result = record_result(TaskFactory(owner=user))
    client.login(username=user.username, password=password)

    response = client.get(reverse("admin:results_result_file", args=[result.pk, "gif"]))

    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert Result.objects.filter(pk=result.pk).exists()
