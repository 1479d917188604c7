"""Reads of results: scoped to the owner of their task for the API, and the remote-storage audit for the CLI."""

from dataclasses import dataclass

from django.conf import settings

from config.errors import NotFound
from results import storage as result_storage
from results.models import PendingFileDeletion, Result, ResultFile

NO_RESULT = "No result for this task yet."


def result_get(*, owner, task_id: int) -> Result:
    """The result of one of the owner's tasks, with its task and files (two queries); 404 otherwise."""
    result = (
        Result.objects.select_related("task")
        .prefetch_related("files")
        .filter(task_id=task_id, task__owner=owner)
        .first()
    )
    if result is None:
        raise NotFound(NO_RESULT)
    return result


def result_file_get(*, owner, task_id: int, kind: str) -> ResultFile:
    """One stored file of the owner's result; 404 for anyone else, or when the run has no such file."""
    file = (
        ResultFile.objects.select_related("result")
        .filter(result__task_id=task_id, result__task__owner=owner, kind=kind)
        .first()
    )
    if file is None:
        raise NotFound("No such file for this task.")
    return file


# AUDITING A REMOTE STORAGE (manage.py cloudinary_orphans)
# ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssetAudit:
    """A file found in a remote storage, and what the database says about it."""

    storage: str
    public_id: str
    name: str
    bytes: int
    created_at: str
    status: str  # "referenced" (a result's file), "pending" (journalled for deletion), "orphaned"


def remote_storage_aliases() -> list[str]:
    """The STORAGES aliases whose files can be listed (Cloudinary's)."""
    return [alias for alias in settings.STORAGES if hasattr(result_storage.get_storage(alias), "list_assets")]


def remote_assets_audit(*, page_size: int = 500) -> list[AssetAudit]:
    """Every result file in the remote (listable) storages, classified against the database.

    The storage is listed first, then the journal, then the results: a file moves from the
    journal to a Result in one transaction, so read in this order no file in flight is taken
    for an orphan.
    """
    aliases = remote_storage_aliases()
    listed = [
        (alias, asset)
        for alias in aliases
        for asset in result_storage.get_storage(alias).list_assets(page_size=page_size)
    ]
    pending = set(PendingFileDeletion.objects.filter(storage__in=aliases).values_list("storage", "name"))
    referenced = set(ResultFile.objects.filter(storage__in=aliases).values_list("storage", "name"))
    audits = []
    for alias, asset in listed:
        key = (alias, asset.name)
        status = "referenced" if key in referenced else "pending" if key in pending else "orphaned"
        audits.append(AssetAudit(alias, asset.public_id, asset.name, asset.bytes, asset.created_at, status))
    return audits
