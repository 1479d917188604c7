"""Cloudinary: deleting results and tasks destroys their assets; the orphan audit command.
The real cloudinary SDK and django-cloudinary-storage talk HTTP to the local server because
CLOUDINARY_URL says so (upload_prefix, secure=false, cname); nothing of theirs is patched.
"""

import io

# The fixture is called `cloudinary`: the SDK and its modules go by other names here.
import pytest
from cloudinary import uploader as cloudinary_uploader
from django.core.files.storage import storages
from django.core.management import CommandError, call_command

from results.jobs import retry_file_deletions
from results.models import PendingFileDeletion, Result, ResultFile
from results.tests.cloudinary_server import CloudinaryServer
from results.tests.factories import make_due
from tasks.models import Task
from tasks.tests.factories import TaskFactory, record_result

pytestmark = pytest.mark.django_db


# DELETING
# ------------------------------------------------------------------------------


def test_deleting_a_task_destroys_its_assets(cloudinary, auth_client, user):
    server = cloudinary.server
    result = record_result(TaskFactory(owner=user))

    response = auth_client.delete(f"/api/v1/tasks/{result.task_id}")

    assert response.status_code == 204 and not response.has_header("Warning")
    assert server.assets == {}
    destroys = server.calls_of("destroy")
    assert len(destroys) == 3
    assert all(call.signature_ok and call.params["invalidate"] == "1" for call in destroys)
    assert not ResultFile.objects.exists() and not PendingFileDeletion.objects.exists()


def test_deleting_a_result_destroys_its_assets(cloudinary, auth_client, user):
    result = record_result(TaskFactory(owner=user))

    body = auth_client.delete(f"/api/v1/results/{result.task_id}").json()

    assert (
        body["files_deleted"] is True
        and sorted(body["deleted_files"]) == ["gif", "history", "script"]
        and body["warnings"] == []
    )
    assert cloudinary.server.assets == {}


def test_a_new_run_destroys_the_assets_of_the_result_it_replaces(cloudinary, user, django_capture_on_commit_callbacks):
    server = cloudinary.server
    task = TaskFactory(owner=user)
    first = {f.kind: f.name for f in record_result(task).files.all()}

    with django_capture_on_commit_callbacks(execute=True):
        second = {f.kind: f.name for f in record_result(task).files.all()}

    assert first != second
    assert sorted(public_id for _, public_id in server.assets) == sorted(
        f"gatehouse/{name.removesuffix('.gif')}" for name in second.values()
    )


def test_deleting_a_result_while_cloudinary_fails_is_200_with_warnings_and_retried(cloudinary, auth_client, user):
    server = cloudinary.server
    result = record_result(TaskFactory(owner=user))
    server.fail()

    response = auth_client.delete(f"/api/v1/results/{result.task_id}")

    assert response.status_code == 200
    body = response.json()
    assert body["database_deleted"] is True and body["files_deleted"] is False and body["deleted_files"] == []
    assert body["message"] == "Result deleted; some files will be deleted later."
    assert len(body["warnings"]) == 3 and all("will be retried" in w for w in body["warnings"])
    assert not Result.objects.exists()
    assert PendingFileDeletion.objects.filter(reason="deleted", attempts=1).count() == 3
    assert len(server.calls_of("destroy")) == 1  # one failed call: the others were not tried in this request
    assert len(server.assets) == 3

    # Still down at the next retry: nothing lost, back-off grows.
    make_due()
    assert retry_file_deletions() == {"deleted": 0, "failed": 3}
    assert set(PendingFileDeletion.objects.values_list("attempts", flat=True)) == {2}

    # Cloudinary is back: the periodic job destroys the assets.
    server.recover()
    assert retry_file_deletions() == {"deleted": 0, "failed": 0}  # back-off not over yet
    make_due()
    assert retry_file_deletions() == {"deleted": 3, "failed": 0}
    assert server.assets == {} and not PendingFileDeletion.objects.exists()


def test_deleting_a_task_while_cloudinary_is_unreachable_answers_204_with_a_warning(cloudinary, auth_client, user):
    server = cloudinary.server
    result = record_result(TaskFactory(owner=user))
    port = server.port
    server.stop()  # nothing listens on the port any more: connection refused

    response = auth_client.delete(f"/api/v1/tasks/{result.task_id}")

    assert response.status_code == 204
    assert response["Warning"].startswith('199 - "3 stored file(s) could not be deleted now')
    assert not Task.objects.exists()
    pending = PendingFileDeletion.objects.all()
    assert pending.count() == 3 and all("Cloudinary did not answer" in p.last_error for p in pending)

    # Cloudinary is back (same address, same assets): the periodic job destroys them.
    revived = CloudinaryServer(
        cloud_name=server.cloud_name, api_key=server.api_key, api_secret=server.api_secret, port=port
    )
    revived.assets = dict(server.assets)
    with revived:
        make_due()
        assert retry_file_deletions() == {"deleted": 3, "failed": 0}
        assert revived.assets == {} and not PendingFileDeletion.objects.exists()


# ORPHANS
# ------------------------------------------------------------------------------


def test_the_orphan_command_reports_and_removes_assets_no_result_references(cloudinary, user):
    server = cloudinary.server
    record_result(TaskFactory(owner=user))  # 3 referenced assets
    raw = storages["cloudinary_raw"]
    raw.save("results/stray-from-a-lost-database.py", io.BytesIO(b"x"))  # an orphan
    raw.save("results/being-deleted.py", io.BytesIO(b"y"))  # journalled: the retry job's business
    PendingFileDeletion.objects.create(storage="cloudinary_raw", name="results/being-deleted.py", reason="deleted")
    cloudinary_uploader.upload(("x.py", b"z"), public_id="someone-else/x.py", resource_type="raw")  # not ours
    before = set(server.assets)

    out = io.StringIO()
    call_command("cloudinary_orphans", "--page-size", "1", stdout=out)  # one asset per Admin API page

    report = out.getvalue()
    assert "orphaned   cloudinary_raw    gatehouse/results/stray-from-a-lost-database.py" in report
    assert "5 asset(s): 3 referenced by a result, 1 waiting in the deletion journal, 1 orphaned." in report
    assert "--delete" in report and set(server.assets) == before
    assert all(call.status == 200 for call in server.calls_of("resources"))

    out = io.StringIO()
    call_command("cloudinary_orphans", "--delete", stdout=out)

    assert "destroyed gatehouse/results/stray-from-a-lost-database.py" in out.getvalue()
    assert set(server.assets) == before - {("raw", "gatehouse/results/stray-from-a-lost-database.py")}
    out = io.StringIO()
    call_command("cloudinary_orphans", stdout=out)
    assert "0 orphaned" in out.getvalue()


def test_the_orphan_command_needs_cloudinary():
    with pytest.raises(CommandError, match="Cloudinary is not configured"):
        call_command("cloudinary_orphans")


def test_a_file_kept_on_a_storage_that_is_no_longer_configured_is_not_a_500(auth_client, user, media_root):
    result = record_result(TaskFactory(owner=user))
    result.files.filter(kind="gif").update(storage="cloudinary_image")  # written while Cloudinary was configured

    body = auth_client.get(f"/api/v1/results/{result.task_id}").json()

    assert body["result_gif"] is None and body["result_json_url"].endswith("/script")
    assert auth_client.get(f"/api/v1/results/{result.task_id}/gif").status_code == 404
