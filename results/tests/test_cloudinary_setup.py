"""Cloudinary: request signing as the SDK does it, and storage selection from the environment.
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
from django.core.files.storage import storages

from results.tests import factories as result_factories
from results.tests.cloudinary_protocol import expected_signature

pytestmark = pytest.mark.django_db

BASE_DIR = Path(settings.BASE_DIR)


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
