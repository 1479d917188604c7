"""The results endpoints: the result, its owner-only files, and deletion (with a storage that fails)."""

import io

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from results import services
from results.models import PendingFileDeletion, Result
from results.tests.storages import FlakyStorage
from tasks.tests.factories import TaskFactory, record_result

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]


@pytest.fixture
def result(user):
    return record_result(TaskFactory(owner=user))


@pytest.fixture
def flaky_storage(settings):
    settings.STORAGES = {**settings.STORAGES, "flaky": {"BACKEND": "results.tests.storages.FlakyStorage"}}
    settings.RESULTS_STORAGES = {"gif": "flaky", "script": "flaky", "history": "flaky"}
    yield FlakyStorage
    FlakyStorage.failing = False


def test_get_result(auth_client, result, django_assert_max_num_queries):
    with django_assert_max_num_queries(3):  # result with its task, its files (+ auth)
        response = auth_client.get(f"/api/v1/results/{result.task_id}")

    assert response.status_code == 200
    body = response.json()
    assert body["task_id"] == result.task_id and body["run"] == 1
    assert (body["actual_status"], body["expected_status"], body["passed"]) == ("success", "success", True)
    base = f"http://testserver/api/v1/results/{result.task_id}"
    assert body["result_gif"] == f"{base}/gif"
    assert body["result_json_url"] == f"{base}/script"
    assert body["history_url"] == f"{base}/history"
    assert [step["action"] for step in body["history"]] == ["goto", "expect_text"]
    assert body["warnings"] == [] and body["created_at"]


def test_no_result_yet_is_404(auth_client, user):
    task = TaskFactory(owner=user)

    response = auth_client.get(f"/api/v1/results/{task.pk}")

    assert response.status_code == 404
    assert response.json() == {"detail": "No result for this task yet.", "code": "not_found"}


def test_the_files_are_served_to_their_owner(auth_client, result):
    files = {f.kind: f for f in result.files.all()}

    gif = auth_client.get(f"/api/v1/results/{result.task_id}/gif", HTTP_ACCEPT="image/gif")
    script = auth_client.get(f"/api/v1/results/{result.task_id}/script")
    history = auth_client.get(f"/api/v1/results/{result.task_id}/history")

    assert gif.status_code == 200 and gif["Content-Type"] == "image/gif"
    body = b"".join(gif.streaming_content)
    assert body == default_storage.open(files["gif"].name).read()
    assert Image.open(io.BytesIO(body)).n_frames == 2
    assert gif["Cache-Control"] == "private, max-age=0"
    assert script.status_code == 200 and script["Content-Type"].startswith("text/x-python")
    assert script["Content-Disposition"].startswith("attachment;")
    assert b"sync_playwright" in b"".join(script.streaming_content)
    assert history.status_code == 200
    assert b'"history"' in b"".join(history.streaming_content)


def test_another_user_gets_404_on_the_result_and_its_files(make_user, login, client_for, result):
    stranger = client_for(login(make_user("mallory")).access)
    task_id = result.task_id

    assert stranger.get(f"/api/v1/results/{task_id}").status_code == 404
    assert stranger.delete(f"/api/v1/results/{task_id}").status_code == 404
    for kind in ("gif", "script", "history"):
        assert stranger.get(f"/api/v1/results/{task_id}/{kind}").status_code == 404
    assert Result.objects.filter(pk=result.pk).exists()


def test_anonymous_gets_401_and_media_is_never_public(api_client, result):
    name = result.files.get(kind="gif").name

    assert api_client.get(f"/api/v1/results/{result.task_id}/gif").status_code == 401
    assert api_client.get(f"/media/{name}").status_code == 404
    assert api_client.get("/media/results/").status_code == 404


def test_an_unknown_file_kind_is_404(auth_client, result):
    assert auth_client.get(f"/api/v1/results/{result.task_id}/passwd").status_code == 404


def test_delete_result_removes_row_and_files(auth_client, result, media_root):
    names = list(result.files.values_list("name", flat=True))

    response = auth_client.delete(f"/api/v1/results/{result.task_id}")

    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "Result deleted." and body["task_id"] == result.task_id
    assert body["files_deleted"] is True and sorted(body["deleted_files"]) == ["gif", "history", "script"]
    assert body["database_deleted"] is True and body["warnings"] == []
    assert not Result.objects.exists()
    assert not any(default_storage.exists(name) for name in names)
    assert not PendingFileDeletion.objects.exists()
    assert auth_client.get(f"/api/v1/results/{result.task_id}").status_code == 404


def test_delete_while_the_storage_fails_is_200_with_warnings_and_retried_later(
    auth_client, user, flaky_storage, media_root
):
    result = record_result(TaskFactory(owner=user))
    names = sorted(result.files.values_list("name", flat=True))
    flaky_storage.failing = True

    response = auth_client.delete(f"/api/v1/results/{result.task_id}")

    assert response.status_code == 200
    body = response.json()
    assert body["database_deleted"] is True and body["files_deleted"] is False and body["deleted_files"] == []
    assert len(body["warnings"]) == 3 and "will be retried" in body["warnings"][0]
    assert not Result.objects.exists()
    pending = PendingFileDeletion.objects.order_by("name")
    assert [p.name for p in pending] == names
    assert all(p.attempts == 1 and "unreachable" in p.last_error for p in pending)
    assert all(FlakyStorage().exists(name) for name in names)

    # The store comes back; the periodic job (results.retry_file_deletions) finishes the work
    # once the back-off has passed.
    from results.jobs import retry_file_deletions

    flaky_storage.failing = False
    assert retry_file_deletions() == {"deleted": 0, "failed": 0}  # not due yet
    pending.update(not_before=pending.first().created_at)
    assert retry_file_deletions() == {"deleted": 3, "failed": 0}
    assert not PendingFileDeletion.objects.exists()
    assert not any(FlakyStorage().exists(name) for name in names)


def test_deleting_a_task_while_the_storage_fails_still_deletes_the_task(auth_client, user, flaky_storage):
    result = record_result(TaskFactory(owner=user))
    flaky_storage.failing = True

    assert auth_client.delete(f"/api/v1/tasks/{result.task_id}").status_code == 204

    assert not Result.objects.exists()
    assert PendingFileDeletion.objects.count() == 3
    flaky_storage.failing = False
    PendingFileDeletion.objects.update(not_before=PendingFileDeletion.objects.first().created_at)
    assert all(o.error is None for o in services.pending_file_deletions_process())


def test_deleting_the_owner_leaves_no_orphaned_file(user):
    """A cascade that bypasses the services (deleting a user) still journals every file."""
    result = record_result(TaskFactory(owner=user))
    names = sorted(result.files.values_list("name", flat=True))

    user.delete()

    assert sorted(PendingFileDeletion.objects.values_list("name", flat=True)) == names
    assert all(o.error is None for o in services.pending_file_deletions_process())
    assert not any(default_storage.exists(name) for name in names)
