"""Cloudinary: a run's files stored (and retried, kept locally, cleaned up) against the local server.
The real cloudinary SDK and django-cloudinary-storage talk HTTP to the local server because
CLOUDINARY_URL says so (upload_prefix, secure=false, cname); nothing of theirs is patched.
"""

import io
import os
import time

# The fixture is called `cloudinary`: the SDK and its modules go by other names here.
import pytest
import requests
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from PIL import Image

from results import services
from results.jobs import retry_file_deletions
from results.models import PendingFileDeletion, Result
from results.tests import factories as result_factories
from results.tests.factories import make_due, public_ids
from tasks import services as task_services
from tasks.models import Task, TaskStatus
from tasks.tests.factories import STEPS, TaskFactory, artifacts_for, record_result

pytestmark = pytest.mark.django_db


# STORING A RUN
# ------------------------------------------------------------------------------


def test_a_run_stores_the_gif_as_an_image_and_the_script_and_history_as_raw(cloudinary, auth_client, user):
    server = cloudinary.server
    result = record_result(TaskFactory(owner=user))
    task_id = result.task_id

    files = {f.kind: f for f in result.files.all()}
    assert {kind: f.storage for kind, f in files.items()} == result_factories.CLOUDINARY_RESULTS_STORAGES
    gif_id = f"gatehouse/{files['gif'].name.removesuffix('.gif')}"
    assert public_ids(server) == sorted(
        [("image", gif_id), ("raw", f"gatehouse/{files['script'].name}"), ("raw", f"gatehouse/{files['history'].name}")]
    )
    assert server.asset("image", gif_id).format == "gif"
    # Deterministic public ids, overwriting, no random suffix, signed, CDN invalidated.
    uploads = server.calls_of("upload")
    assert len(uploads) == 3 and all(call.signature_ok and call.status == 200 for call in uploads)
    assert all(
        (c.params["overwrite"], c.params["unique_filename"], c.params["invalidate"]) == ("1", "0", "1") for c in uploads
    )
    assert not PendingFileDeletion.objects.exists() and result.warnings == []

    # The API hands out the delivery URLs, and they serve the bytes that were uploaded.
    body = auth_client.get(f"/api/v1/results/{task_id}").json()
    prefix = f"{server.base_url}/{server.cloud_name}"
    assert body["result_gif"] == f"{prefix}/image/upload/v1/{gif_id}.gif"
    assert body["result_json_url"] == f"{prefix}/raw/upload/v1/gatehouse/{files['script'].name}"
    gif = requests.get(body["result_gif"], timeout=5)
    assert gif.content == server.asset("image", gif_id).data
    assert Image.open(io.BytesIO(gif.content)).n_frames == 2
    script = requests.get(body["result_json_url"], timeout=5).content
    assert b"sync_playwright" in script
    history = requests.get(body["history_url"], timeout=5).json()
    assert history["task_id"] == task_id and len(history["history"]) == 2

    # The owner-only download endpoints redirect there; anyone else still gets 404.
    redirect = auth_client.get(f"/api/v1/results/{task_id}/gif")
    assert redirect.status_code == 302 and redirect["Location"] == body["result_gif"]


def test_another_user_gets_404_on_a_result_stored_on_cloudinary(cloudinary, user, make_user, login, client_for):
    result = record_result(TaskFactory(owner=user))
    stranger = client_for(login(make_user("mallory")).access)

    assert stranger.get(f"/api/v1/results/{result.task_id}").status_code == 404
    assert stranger.get(f"/api/v1/results/{result.task_id}/gif").status_code == 404
    assert stranger.delete(f"/api/v1/tasks/{result.task_id}").status_code == 404
    assert len(cloudinary.server.assets) == 3


def test_uploads_failing_twice_then_succeeding_leave_exactly_one_asset_each(cloudinary, user):
    server = cloudinary.server
    # Each file's first two uploads arrive but their answers are lost (500 after storing).
    server.fail(times=2, actions=("upload",), per_asset=True, after_store=True)

    result = record_result(TaskFactory(owner=user))

    assert len(server.calls_of("upload")) == 9  # 3 files x (2 failures + 1 success)
    assert len(server.assets) == 3  # overwritten in place, never duplicated
    assert {f.storage for f in result.files.all()} == {"cloudinary_image", "cloudinary_raw"}
    assert result.warnings == []
    assert not PendingFileDeletion.objects.exists()
    assert Task.objects.get(pk=result.task_id).status == TaskStatus.COMPLETED


def test_uploads_failing_for_good_keep_the_files_local_with_a_warning(cloudinary, auth_client, user, media_root):
    server = cloudinary.server
    server.fail(actions=("upload",))

    result = record_result(TaskFactory(owner=user))  # asserts the run was recorded

    task = Task.objects.get(pk=result.task_id)
    assert task.status == TaskStatus.COMPLETED and task.error == ""
    # The first file tried RESULTS_UPLOAD_ATTEMPTS times; the others did not wait for a store that is down.
    assert len(server.calls_of("upload")) == settings.RESULTS_UPLOAD_ATTEMPTS
    assert {f.storage for f in result.files.all()} == {"default"}
    assert all(default_storage.exists(f.name) for f in result.files.all())
    assert len(result.warnings) == 3
    assert result.warnings[0] == (
        "The gif file could not be stored in Cloudinary (no answer, or an error, after 3 tries); "
        "it is kept in the server's local storage."
    )
    assert all("could not be stored in Cloudinary" in w and "local storage" in w for w in result.warnings)

    body = auth_client.get(f"/api/v1/results/{result.task_id}").json()
    assert body["warnings"] == result.warnings
    assert body["result_gif"] == f"http://testserver/api/v1/results/{result.task_id}/gif"
    gif = auth_client.get(body["result_gif"])
    assert gif.status_code == 200 and Image.open(io.BytesIO(b"".join(gif.streaming_content))).n_frames == 2

    # The failed uploads stay journalled (one might have arrived): the retry job checks them later.
    journalled = PendingFileDeletion.objects.filter(storage__startswith="cloudinary")
    assert journalled.count() == 3
    server.recover()
    make_due()
    assert retry_file_deletions() == {"deleted": 3, "failed": 0}  # "not found" on Cloudinary counts as gone
    assert not PendingFileDeletion.objects.exists()
    assert all(default_storage.exists(f.name) for f in result.files.all())


def test_a_refused_upload_is_not_retried_and_the_files_stay_local(cloudinary, user):
    from results import cloudinary_backend

    server = cloudinary.server
    os.environ["CLOUDINARY_URL"] = server.cloudinary_url(api_secret="not-the-secret")  # restored by the fixture
    cloudinary_backend.configure_sdk()

    result = record_result(TaskFactory(owner=user))

    assert [call.status for call in server.calls_of("upload")] == [401]  # a refusal: no second try
    assert server.assets == {} and {f.storage for f in result.files.all()} == {"default"}
    assert "(it refused the upload)" in result.warnings[0]


def test_a_slow_cloudinary_times_out_and_the_late_uploads_are_cleaned_up(cloudinary, settings, user):
    server = cloudinary.server
    settings.RESULTS_STORAGE_TIMEOUT = 0.5
    server.slow(1.5, actions=("upload",))  # the upload is stored, the answer comes after the client gave up

    started = time.monotonic()
    result = record_result(TaskFactory(owner=user))
    elapsed = time.monotonic() - started

    assert elapsed < 10  # 3 tries of 0.5 s + back-off (about 2 s), then local storage for every file
    assert {f.storage for f in result.files.all()} == {"default"}
    assert "(no answer, or an error, after 3 tries); it is kept in the server's local storage." in result.warnings[0]
    assert all("it failed for an earlier file of this run" in w for w in result.warnings[1:])
    time.sleep(1.2)  # let the server finish the last late upload
    assert len(server.assets) == 1  # the GIF arrived after all: an orphan unless cleaned up
    server.recover()
    make_due()
    retry_file_deletions()
    assert server.assets == {}
    assert not PendingFileDeletion.objects.exists()


def test_an_upload_whose_transaction_rolled_back_is_deleted_by_the_retry_job(cloudinary, user):
    server = cloudinary.server
    task = task_services.task_initiate(task=TaskFactory(owner=user), instruction="check", steps=STEPS)
    claim = task_services.task_run_claim(task_id=task.pk, run_number=1)
    files = services.result_files_upload(task_id=task.pk, run_number=1, artifacts=artifacts_for(claim))
    assert len(server.assets) == 3

    with pytest.raises(RuntimeError), transaction.atomic():
        locked = Task.objects.select_for_update().get(pk=task.pk)
        services.result_record(
            task_id=locked.pk,
            run_number=1,
            expected_status=locked.expected_status,
            files=files,
            expectation_met=True,
            run_failed=False,
            history=[],
        )
        raise RuntimeError("the finishing transaction fails after recording")

    assert not Result.objects.exists()
    assert PendingFileDeletion.objects.filter(reason="unclaimed").count() == 3
    assert retry_file_deletions() == {"deleted": 0, "failed": 0}  # within the grace period: left alone
    make_due()
    assert retry_file_deletions() == {"deleted": 3, "failed": 0}
    assert server.assets == {}
    assert all(call.params["invalidate"] == "1" for call in server.calls_of("destroy"))
