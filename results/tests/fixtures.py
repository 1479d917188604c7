"""Fixtures for the Cloudinary tests: the local Cloudinary server, and Cloudinary switched on for this process.

    from results.tests import fixtures
    cloudinary_server, cloudinary = fixtures.cloudinary_server, fixtures.cloudinary  # pytest fixtures

`cloudinary` does what the settings do when CLOUDINARY_URL is in the environment (the storage
aliases in STORAGES, RESULTS_STORAGES pointing at them) and loads the SDK configuration from
that environment, the URL pointing at the local server. A worker subprocess gets the same by
its environment: `start_worker(**cloudinary.worker_env)`.
"""

import os
from dataclasses import dataclass

import cloudinary as cloudinary_sdk
import pytest

from results.tests.cloudinary_server import CloudinaryServer

CLOUDINARY_RESULTS_STORAGES = {"gif": "cloudinary_image", "script": "cloudinary_raw", "history": "cloudinary_raw"}


@pytest.fixture
def cloudinary_server():
    with CloudinaryServer() as server:
        yield server


@dataclass
class CloudinarySetup:
    server: CloudinaryServer
    url: str

    @property
    def worker_env(self) -> dict[str, str]:
        """What a worker subprocess needs in its environment to store on this server, with short waits."""
        return {
            "CLOUDINARY_URL": self.url,
            "RESULTS_STORAGE_TIMEOUT": "3",
            "RESULTS_UPLOAD_BACKOFF": "0.1",
        }


def switch_on(url: str, settings) -> None:
    """Cloudinary configured from CLOUDINARY_URL=url for this process (env, settings, SDK)."""
    os.environ["CLOUDINARY_URL"] = url
    # django-cloudinary-storage refuses to be imported without credentials in the environment.
    from results import cloudinary_backend

    settings.STORAGES = {**settings.STORAGES, **settings.CLOUDINARY_STORAGES}
    settings.RESULTS_STORAGES = CLOUDINARY_RESULTS_STORAGES
    settings.RESULTS_STORAGE_TIMEOUT = 2.0
    settings.RESULTS_UPLOAD_BACKOFF = 0.05
    cloudinary_backend.configure_sdk()


@pytest.fixture
def cloudinary(cloudinary_server, settings, media_root):
    """Result files on the local Cloudinary server (the fallback, local storage, in this test's MEDIA_ROOT)."""
    previous = os.environ.get("CLOUDINARY_URL")
    url = cloudinary_server.cloudinary_url()
    switch_on(url, settings)
    yield CloudinarySetup(server=cloudinary_server, url=url)
    if previous is None:
        os.environ.pop("CLOUDINARY_URL", None)
    else:
        os.environ["CLOUDINARY_URL"] = previous
    cloudinary_sdk.reset_config()
