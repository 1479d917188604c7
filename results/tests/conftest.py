"""Fixtures for the results tests: the local Cloudinary server, and Cloudinary switched on for this process.

`cloudinary` does what the settings do when CLOUDINARY_URL is in the environment (the storage
aliases in STORAGES, RESULTS_STORAGES pointing at them) and loads the SDK configuration from
that environment, the URL pointing at the local server. A worker subprocess gets the same by
its environment: `start_worker(**cloudinary.worker_env)`.
"""

import os

import cloudinary as cloudinary_sdk
import pytest

from results.tests.cloudinary_server import CloudinaryServer
from results.tests.factories import CloudinarySetup, switch_on


@pytest.fixture
def cloudinary_server():
    with CloudinaryServer() as server:
        yield server


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
