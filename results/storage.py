"""Where result files live: STORAGES aliases per kind of file, their names, and their URLs.

Names are deterministic per (task, run, kind) so a retried or redelivered run overwrites
its own files instead of leaving duplicates, and unguessable (an HMAC under SECRET_KEY)
so nobody finds a file by counting task ids. Files on a local `FileSystemStorage` are
served by the API to their owner only; any other storage (Cloudinary, issue 6) hands out
its own delivery URLs.
"""

from django.conf import settings
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.http import FileResponse, HttpResponseBase, HttpResponseRedirect
from django.urls import reverse
from django.utils.crypto import salted_hmac

from config.errors import NotFound

EXTENSIONS = {"gif": "gif", "script": "py", "history": "json"}
CONTENT_TYPES = {"gif": "image/gif", "script": "text/x-python; charset=utf-8", "history": "application/json"}


def storage_alias_for(kind: str) -> str:
    """The STORAGES alias that keeps new files of this kind."""
    return settings.RESULTS_STORAGES[kind]


def get_storage(alias: str) -> Storage:
    return storages[alias]


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


def file_url(*, request, task_id: int, kind: str, alias: str, name: str) -> str:
    """The URL a client fetches the file from: our owner-only endpoint, or the storage's delivery URL."""
    if is_served_by_api(alias):
        path = reverse("result-file", kwargs={"task_id": task_id, "kind": kind})
        return request.build_absolute_uri(path) if request is not None else path
    return get_storage(alias).url(name)


def file_response(file) -> HttpResponseBase:
    """Serve a stored result file: streamed from local storage, or a redirect to the storage's delivery URL."""
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
