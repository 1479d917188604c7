"""Helpers shared by the results tests: Cloudinary switched on for this process against the local server."""

import os
from dataclasses import dataclass

from django.utils import timezone

from results.models import PendingFileDeletion
from results.tests.cloudinary_server import CloudinaryServer

CLOUDINARY_RESULTS_STORAGES = {"gif": "cloudinary_image", "script": "cloudinary_raw", "history": "cloudinary_raw"}


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


def public_ids(server: CloudinaryServer) -> list[tuple[str, str]]:
    return sorted(server.assets)


def make_due() -> None:
    """Let the back-off (or the grace period of unclaimed uploads) pass."""
    PendingFileDeletion.objects.update(not_before=timezone.now())
