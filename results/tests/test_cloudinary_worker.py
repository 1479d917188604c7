"""End to end with Cloudinary: the HTTP API, a real Celery worker process, real Chromium, the local Cloudinary server.

The worker is another process: it finds Cloudinary the way production does, from CLOUDINARY_URL
in its environment (pointing at the local server), through the settings. Run with PostgreSQL
and a Redis broker, e.g.:
DATABASE_URL=postgres://... CELERY_BROKER_URL=redis://127.0.0.1:6379/7 .venv/bin/pytest results/tests
"""

import io

import pytest
import requests
from PIL import Image

from tasks.tests.factories import FINISHED, create_task, fetch, initiate, wait_for_status

pytestmark = [pytest.mark.worker, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def steps(site, word: str) -> list[dict]:
    return [
        {"action": "goto", "url": site.url("/")},
        {"action": "fill", "selector": "input[name=q]", "text": word},
        {"action": "press", "selector": "input[name=q]", "key": "Enter"},
        {"action": "expect_text", "text": f"Results for {word}"},
    ]


def test_a_run_stores_its_gif_and_script_on_cloudinary_and_deleting_the_task_destroys_them(
    auth_client, cloudinary, local_site, start_worker, media_root
):
    server = cloudinary.server
    start_worker(**cloudinary.worker_env)
    task_id = create_task(auth_client)

    initiate(auth_client, task_id, {"steps": steps(local_site, "lamp")})
    task = wait_for_status(auth_client, task_id, FINISHED)

    assert task["status"] == "completed", task["error"]
    result = auth_client.get(f"/api/v1/results/{task_id}").json()
    assert result["passed"] is True and result["warnings"] == []
    # The GIF as an image, the script (and the history) as raw files, uploaded by the worker, signed.
    kinds = sorted(resource_type for resource_type, _ in server.assets)
    assert kinds == ["image", "raw", "raw"]
    uploads = server.calls_of("upload")
    assert len(uploads) == 3 and all(call.signature_ok and call.status == 200 for call in uploads)
    local = media_root / "results"
    assert not local.exists() or not any(local.iterdir())  # nothing kept locally

    # The result's URLs are Cloudinary delivery URLs serving the uploaded bytes.
    delivery = f"{server.base_url}/{server.cloud_name}/"
    assert result["result_gif"].startswith(delivery + "image/upload/")
    assert result["result_json_url"].startswith(delivery + "raw/upload/")
    gif_bytes = requests.get(result["result_gif"], timeout=5).content
    image_asset = next(asset for (kind, _), asset in server.assets.items() if kind == "image")
    assert gif_bytes == image_asset.data
    gif = Image.open(io.BytesIO(gif_bytes))
    assert gif.format == "GIF" and gif.is_animated and gif.n_frames == 4  # a frame per step
    script = requests.get(result["result_json_url"], timeout=5).content
    assert b"sync_playwright" in script and b"Results for lamp" in script
    assert script in [asset.data for (kind, _), asset in server.assets.items() if kind == "raw"]
    # The owner's download endpoint sends the client there.
    assert auth_client.get(f"/api/v1/results/{task_id}/script")["Location"] == result["result_json_url"]

    # Deleting the task destroys every asset (CDN invalidated).
    response = auth_client.delete(f"/api/v1/tasks/{task_id}")
    assert response.status_code == 204 and not response.has_header("Warning")
    assert server.assets == {}
    assert all(call.params["invalidate"] == "1" and call.status == 200 for call in server.calls_of("destroy"))


def test_a_run_completes_with_local_files_and_a_warning_when_cloudinary_keeps_failing(
    auth_client, cloudinary, local_site, start_worker, media_root
):
    server = cloudinary.server
    server.fail(actions=("upload",))
    start_worker(**cloudinary.worker_env)
    task_id = create_task(auth_client)

    initiate(auth_client, task_id, {"steps": steps(local_site, "sofa")})
    task = wait_for_status(auth_client, task_id, FINISHED)

    assert task["status"] == "completed", task["error"]
    result = auth_client.get(f"/api/v1/results/{task_id}").json()
    assert result["passed"] is True
    assert len(result["warnings"]) == 3
    assert all("could not be stored in Cloudinary" in warning for warning in result["warnings"])
    assert server.assets == {} and len(server.calls_of("upload")) == 3  # the retries, then local storage
    # The files are local, served by the API to their owner.
    assert result["result_gif"] == f"http://testserver/api/v1/results/{task_id}/gif"
    assert Image.open(io.BytesIO(fetch(auth_client, result["result_gif"]))).n_frames == 4
    assert b"sync_playwright" in fetch(auth_client, result["result_json_url"])
    assert len(list((media_root / "results").iterdir())) == 3
