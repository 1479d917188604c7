"""Result files on Cloudinary, against the local Cloudinary server (results/tests/cloudinary_server.py).

The real cloudinary SDK and django-cloudinary-storage talk HTTP to the local server because
CLOUDINARY_URL says so (upload_prefix, secure=false, cname); nothing of theirs is patched.
"""

import io
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# The fixture is called `cloudinary`: the SDK and its modules go by other names here.
import cloudinary as cloudinary_sdk
import pytest
import requests
from cloudinary import exceptions as cloudinary_errors
from cloudinary import uploader as cloudinary_uploader
from cloudinary import utils as cloudinary_utils
from django.conf import settings
from django.core.files.storage import default_storage, storages
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone
from PIL import Image

from results import services
from results.jobs import retry_file_deletions
from results.models import PendingFileDeletion, Result, ResultFile
from results.tests import factories as result_factories
from results.tests.cloudinary_server import CloudinaryServer, expected_signature
from tasks import services as task_services
from tasks.models import Task, TaskStatus
from tasks.tests.factories import STEPS, TaskFactory, artifacts_for, record_result

pytestmark = pytest.mark.django_db

BASE_DIR = Path(settings.BASE_DIR)


def public_ids(server: CloudinaryServer) -> list[tuple[str, str]]:
    return sorted(server.assets)


def make_due() -> None:
    """Let the back-off (or the grace period of unclaimed uploads) pass."""
    PendingFileDeletion.objects.update(not_before=timezone.now())


# SIGNING
# ------------------------------------------------------------------------------


def test_the_server_signs_as_the_sdk_does():
    params = {"public_id": "a/b&c", "timestamp": "1700000000", "overwrite": "1", "tags": "x,y"}
    assert expected_signature(params, "s3cr3t") == cloudinary_utils.api_sign_request(params, "s3cr3t")


def test_uploads_are_signed_and_a_bad_signature_is_refused_with_401(cloudinary):
    server = cloudinary.server

    # A client with the wrong secret: Cloudinary's 401, the SDK's AuthorizationRequired.
    with pytest.raises(cloudinary_errors.AuthorizationRequired, match="Invalid Signature"):
        cloudinary_uploader.upload(("x.py", b"print(1)"), public_id="probe.py", resource_type="raw", api_secret="nope")
    assert server.calls_of("upload")[-1].signature_ok is False
    assert server.assets == {}

    # A request signed properly, then altered on the way (another public id): 401 too.
    params = {"public_id": "gatehouse/results/ok.py", "timestamp": str(int(time.time())), "overwrite": "1"}
    signed = cloudinary_utils.sign_request(dict(params), {})
    tampered = {**signed, "public_id": "gatehouse/results/evil.py"}
    url = f"{server.base_url}/v1_1/{server.cloud_name}/raw/upload"
    assert requests.post(url, data=tampered, files={"file": ("f.py", b"x")}, timeout=5).status_code == 401
    assert requests.post(url, data=signed, files={"file": ("f.py", b"x")}, timeout=5).status_code == 200
    assert list(server.assets) == [("raw", "gatehouse/results/ok.py")]

    # A stale request (signed more than an hour ago) is refused as Cloudinary does.
    stale = cloudinary_utils.sign_request({**params, "timestamp": str(int(time.time()) - 7200)}, {})
    response = requests.post(url, data=stale, files={"file": ("f.py", b"x")}, timeout=5)
    assert response.status_code == 401 and "Stale request" in response.json()["error"]["message"]


# CONFIGURATION
# ------------------------------------------------------------------------------


def settings_in_subprocess(env: dict[str, str], module: str = "config.settings.base") -> dict:
    """Import the settings in a fresh interpreter with this environment; what they chose, or the error."""
    code = (
        "import json, django\n"
        "from django.conf import settings\n"
        "try:\n"
        "    django.setup()\n"
        "except Exception as error:\n"
        "    print(json.dumps({'error': f'{type(error).__name__}: {error}'})); raise SystemExit\n"
        "from django.core.files.storage import storages\n"
        "alias = settings.RESULTS_STORAGES['gif']\n"
        "out = {'results': settings.RESULTS_STORAGES, 'secure': settings.CLOUDINARY_STORAGE['SECURE'],\n"
        "       'aliases': sorted(settings.STORAGES), 'backend': type(storages[alias]).__name__}\n"
        "if alias != 'default':\n"
        "    out['url'] = storages[alias].url('results/x.gif')\n"
        "print(json.dumps(out))\n"
    )
    clean = {key: value for key, value in os.environ.items() if not key.startswith("CLOUDINARY_")}
    completed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={**clean, "DJANGO_SETTINGS_MODULE": module, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_storage_selection_follows_the_environment():
    local = settings_in_subprocess({})
    assert local["results"] == {"gif": "default", "script": "default", "history": "default"}
    assert local["backend"] == "FileSystemStorage" and "cloudinary_image" not in local["aliases"]

    # CLOUDINARY_URL, its query parameters read by the SDK (and secure=false meaning false).
    by_url = settings_in_subprocess(
        {"CLOUDINARY_URL": "cloudinary://k:s@demo?secure=false&cname=media.example.test&upload_prefix=http://x"}
    )
    assert by_url["results"] == result_factories.CLOUDINARY_RESULTS_STORAGES
    assert by_url["backend"] == "CloudinaryStorage" and by_url["secure"] is False
    assert by_url["url"] == "http://media.example.test/demo/image/upload/v1/gatehouse/results/x.gif"

    # The three variables instead of the URL; https by default.
    by_parts = settings_in_subprocess(
        {"CLOUDINARY_CLOUD_NAME": "demo", "CLOUDINARY_API_KEY": "k", "CLOUDINARY_API_SECRET": "s"}
    )
    assert by_parts["results"] == result_factories.CLOUDINARY_RESULTS_STORAGES and by_parts["secure"] is True
    assert by_parts["url"] == "https://res.cloudinary.com/demo/image/upload/v1/gatehouse/results/x.gif"

    # A private CDN in the URL's path form.
    private = settings_in_subprocess({"CLOUDINARY_URL": "cloudinary://k:s@demo/cdn.example.test"})
    assert private["url"] == "https://cdn.example.test/image/upload/v1/gatehouse/results/x.gif"

    # Production keeps the Cloudinary aliases next to its static files storage.
    production = settings_in_subprocess(
        {"CLOUDINARY_URL": "cloudinary://k:s@demo", "SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "example.test"},
        module="config.settings.production",
    )
    assert production["backend"] == "CloudinaryStorage"
    assert {"cloudinary_image", "cloudinary_raw", "staticfiles"} <= set(production["aliases"])

    # The test settings refuse a real account (uploads would reach it), and accept a local API.
    assert "Unset CLOUDINARY_URL" in settings_in_subprocess(
        {"CLOUDINARY_URL": "cloudinary://k:s@demo"}, module="config.settings.test"
    ).get("error", "")
    local_api = settings_in_subprocess(
        {"CLOUDINARY_URL": "cloudinary://k:s@demo?upload_prefix=http://127.0.0.1:9"}, module="config.settings.test"
    )
    assert local_api["backend"] == "CloudinaryStorage"

    # Incomplete or malformed configuration: a clear error at start-up, not a 500 later.
    assert "CLOUDINARY_CLOUD_NAME is set without CLOUDINARY_API_SECRET: set all three." in settings_in_subprocess(
        {"CLOUDINARY_CLOUD_NAME": "demo", "CLOUDINARY_API_KEY": "k"}
    ).get("error", "")
    assert "cloudinary://API_KEY:API_SECRET@CLOUD_NAME" in settings_in_subprocess(
        {"CLOUDINARY_URL": "https://k:s@demo"}
    ).get("error", "")


@pytest.mark.parametrize(
    ("query", "expected_path"),
    [
        # Shared distribution: the cloud name in the path. "false" is a string to the SDK.
        ({"private_cdn": "false"}, "/gatehouse-test/image/upload/v1/gatehouse/results/x.gif"),
        # Private CDN: no cloud name in the path.
        ({"private_cdn": "true"}, "/image/upload/v1/gatehouse/results/x.gif"),
    ],
)
def test_delivery_urls_follow_the_url_query_and_serve_the_bytes(
    cloudinary_server, settings, media_root, query, expected_path
):
    previous = os.environ.get("CLOUDINARY_URL")
    try:
        result_factories.switch_on(cloudinary_server.cloudinary_url(**query), settings)
        storage = storages["cloudinary_image"]
        storage.save("results/x.gif", io.BytesIO(b"GIF89a..."))

        url = storage.url("results/x.gif")
        assert url == f"{cloudinary_server.base_url}{expected_path}"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (the local server)
            assert response.read() == b"GIF89a..." and response.headers["Content-Type"] == "image/gif"
        assert storage.exists("results/x.gif") and storage.size("results/x.gif") == 9
        assert not storage.exists("results/missing.gif")
    finally:
        os.environ.pop("CLOUDINARY_URL", None)
        if previous is not None:
            os.environ["CLOUDINARY_URL"] = previous
        cloudinary_sdk.reset_config()


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

    assert sorted(body["files_deleted"]) == ["gif", "history", "script"] and body["warnings"] == []
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
    assert body["database_deleted"] is True and body["files_deleted"] == []
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
