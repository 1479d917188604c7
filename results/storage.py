"""Where result files live: STORAGES aliases per kind of file, their names, and their URLs.

Names are deterministic per (task, run, kind) so a retried or redelivered run overwrites
its own files instead of leaving duplicates, and unguessable (an HMAC under SECRET_KEY)
so nobody finds a file by counting task ids. Files on a local `FileSystemStorage` are
served by the API to their owner only; any other storage (Cloudinary, see
results/cloudinary_backend.py and docs/storage.md) hands out its own delivery URLs.
"""

import logging
import time

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, InvalidStorageError, Storage, storages
from django.http import FileResponse, HttpResponseBase, HttpResponseRedirect
from django.urls import reverse
from django.utils.crypto import salted_hmac

from config.errors import NotFound

logger = logging.getLogger(__name__)

EXTENSIONS = {"gif": "gif", "script": "py", "history": "json"}
CONTENT_TYPES = {"gif": "image/gif", "script": "text/x-python; charset=utf-8", "history": "application/json"}


class StorageUnavailable(ConnectionError):
    """The file store did not answer, or answered with a server error: worth retrying later."""


class StorageRejected(Exception):
    """The file store refused the request (credentials, signature, bad request): retrying will not help."""


def storage_alias_for(kind: str) -> str:
    """The STORAGES alias that keeps new files of this kind."""
    return settings.RESULTS_STORAGES[kind]


def fallback_alias() -> str:
    """Where a file goes when its storage keeps failing: local storage, served by the API."""
    return settings.RESULTS_FALLBACK_STORAGE


def get_storage(alias: str) -> Storage:
    return storages[alias]


def storage_label(alias: str) -> str:
    """A name for the storage in messages to the owner ("Cloudinary", or the alias)."""
    return getattr(get_storage(alias), "label", alias) if _configured(alias) else alias


def service_of(alias: str) -> str:
    """What fails together: storages on one remote service (Cloudinary's image and raw) share it."""
    return getattr(get_storage(alias), "service", alias) if _configured(alias) else alias


def is_transient(error: Exception) -> bool:
    """Whether a storage error may pass by trying again (no answer, a 5xx), as opposed to a refusal."""
    return isinstance(error, ConnectionError | TimeoutError) and not isinstance(error, StorageRejected)


def save_replacing(*, alias: str, name: str, content: bytes) -> str:
    """Save under `name`, replacing a file an earlier attempt of the same run left there."""
    storage = get_storage(alias)
    # A storage that overwrites in place (Cloudinary: same public id, overwrite=True) needs no
    # check; another one would pick a new name next to an existing file.
    if not getattr(storage, "overwrites", False) and storage.exists(name):
        storage.delete(name)
    return storage.save(name, ContentFile(content))


def save_with_retries(*, alias: str, name: str, content: bytes) -> str:
    """Save, retrying transient failures (no answer, a 5xx) with back-off: at most RESULTS_UPLOAD_ATTEMPTS tries.

    Every try uploads under the same name, so a try whose answer was lost (the file did arrive)
    is overwritten by the next one, never duplicated.
    """
    attempts = max(settings.RESULTS_UPLOAD_ATTEMPTS, 1)
    for attempt in range(1, attempts + 1):
        try:
            return save_replacing(alias=alias, name=name, content=content)
        except Exception as error:
            if attempt == attempts or not is_transient(error):
                raise
            delay = settings.RESULTS_UPLOAD_BACKOFF * 2 ** (attempt - 1)
            logger.warning(
                "upload of %s:%s failed (try %s of %s), again in %.1fs: %s",
                alias,
                name,
                attempt,
                attempts,
                delay,
                error,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


def _configured(alias: str) -> bool:
    """False when files were stored under a storage that is no longer configured (Cloudinary credentials removed)."""
    try:
        get_storage(alias)
    except (InvalidStorageError, ImproperlyConfigured):
        return False
    return True


def result_file_name(*, task_id: int, run_number: int, kind: str) -> str:
    token = salted_hmac("results.file-name", f"{task_id}:{run_number}:{kind}", algorithm="sha256").hexdigest()[:32]
    # Flat under results/: deleting a file leaves no empty directory behind.
    return f"results/task{task_id}-run{run_number}-{kind}-{token}.{EXTENSIONS[kind]}"


def download_filename(*, task_id: int, run_number: int, kind: str) -> str:
    """The name a browser saves the file under (Content-Disposition)."""
    label = {"gif": "recording", "script": "replay", "history": "history"}[kind]
    return f"task-{task_id}-run-{run_number}-{label}.{EXTENSIONS[kind]}"


def is_served_by_api(alias: str) -> bool:
    """Local files are never public: the API streams them to their owner."""
    return isinstance(get_storage(alias), FileSystemStorage)


def file_url(*, request, task_id: int, kind: str, alias: str, name: str) -> str | None:
    """The URL a client fetches the file from: our owner-only endpoint, or the storage's delivery URL.

    None when the file's storage is not configured any more.
    """
    if not _configured(alias):
        return None
    if is_served_by_api(alias):
        path = reverse("result-file", kwargs={"task_id": task_id, "kind": kind})
        return request.build_absolute_uri(path) if request is not None else path
    return get_storage(alias).url(name)


def file_response(file) -> HttpResponseBase:
    """Serve a stored result file: streamed from local storage, or a redirect to the storage's delivery URL."""
    if not _configured(file.storage):
        raise NotFound(f"The file is kept in storage {file.storage!r}, which is not configured on this server.")
    if not is_served_by_api(file.storage):
        return HttpResponseRedirect(get_storage(file.storage).url(file.name))
    try:
        handle = get_storage(file.storage).open(file.name, "rb")
    except FileNotFoundError:
        raise NotFound("The file is no longer available.") from None
    response = FileResponse(
        handle,
        content_type=file.content_type,
        as_attachment=file.kind != "gif",
        filename=download_filename(task_id=file.result.task_id, run_number=file.result.run_number, kind=file.kind),
    )
    response["Cache-Control"] = "private, max-age=0"
    return response
