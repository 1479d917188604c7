"""Results: storing a run's files and its Result row, deleting them, and retrying deletions that failed.

The file store and the database cannot share a transaction, so every stored file is
written down in `PendingFileDeletion` *before* the step that could orphan it:

- a run's files are journalled (reason "unclaimed", due after a grace period) before they
  are uploaded, and the journal rows are removed in the transaction that records the
  Result; a crash or a rollback in between leaves the rows, and the retry job deletes the
  files;
- deleting a result or task journals its files in the deleting transaction, then tries to
  delete them at once; what cannot be deleted now stays journalled and is retried.
"""

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from results import storage as result_storage
from results.models import ActualStatus, PendingFileDeletion, Result, ResultFile
from tasks.models import Task

logger = logging.getLogger(__name__)

# How long an uploaded file may wait to be claimed by its Result before it counts as orphaned.
UNCLAIMED_GRACE = timedelta(minutes=30)
# Retry back-off for deletions the storage refused: 1, 2, 4 ... minutes, at most 6 hours.
RETRY_BACKOFF_MAX = timedelta(hours=6)


@dataclass(frozen=True)
class Artifact:
    """A file a run produced, not stored yet."""

    kind: str
    content: bytes


@dataclass(frozen=True)
class StoredFile:
    """A file saved in a storage, not yet (or no longer) referenced by a Result."""

    kind: str
    storage: str
    name: str
    size: int
    content_type: str


@dataclass
class DeletionReport:
    """What a delete did: the kinds of file gone, whether the row went, and what is left to retry."""

    files_deleted: list[str] = field(default_factory=list)
    database_deleted: bool = False
    warnings: list[str] = field(default_factory=list)


# STORING A RUN
# ------------------------------------------------------------------------------


def _journal(*, files: Iterable[tuple[str, str]], reason: str, not_before) -> list[int]:
    ids = []
    for alias, name in files:
        row, _ = PendingFileDeletion.objects.update_or_create(
            storage=alias, name=name, defaults={"reason": reason, "not_before": not_before}
        )
        ids.append(row.pk)
    return ids


def result_files_upload(*, task_id: int, run_number: int, artifacts: list[Artifact]) -> list[StoredFile]:
    """Save a run's files under their deterministic names, journalled first so none can be orphaned."""
    planned = []
    for artifact in artifacts:
        alias = result_storage.storage_alias_for(artifact.kind)
        name = result_storage.result_file_name(task_id=task_id, run_number=run_number, kind=artifact.kind)
        planned.append((artifact, alias, name))
    _journal(
        files=[(alias, name) for _, alias, name in planned],
        reason=PendingFileDeletion.Reason.UNCLAIMED,
        not_before=timezone.now() + UNCLAIMED_GRACE,
    )
    stored = []
    for artifact, alias, name in planned:
        storage = result_storage.get_storage(alias)
        # An earlier attempt of the same run may have saved this name: overwrite it rather
        # than let the storage pick a new name next to it.
        if storage.exists(name):
            storage.delete(name)
        saved_name = storage.save(name, ContentFile(artifact.content))
        if saved_name != name:  # the storage renamed it after all: journal the real name too
            _journal(
                files=[(alias, saved_name)],
                reason=PendingFileDeletion.Reason.UNCLAIMED,
                not_before=timezone.now() + UNCLAIMED_GRACE,
            )
        stored.append(
            StoredFile(
                kind=artifact.kind,
                storage=alias,
                name=saved_name,
                size=len(artifact.content),
                content_type=result_storage.CONTENT_TYPES[artifact.kind],
            )
        )
    return stored


def result_record(
    *,
    task: Task,
    run_number: int,
    files: list[StoredFile],
    expectation_met: bool,
    run_failed: bool,
    history: list,
    warnings: list[str] | None = None,
) -> Result:
    """Record a run's Result, replacing the previous run's (whose files are then deleted).

    Call inside the transaction that finishes the run, with the task row locked.
    """
    actual_status = ActualStatus.SUCCESS if expectation_met else ActualStatus.FAILURE
    previous = Result.objects.filter(task=task).prefetch_related("files").first()
    replaced_ids = []
    if previous is not None:
        replaced_ids = _journal(
            files=[(f.storage, f.name) for f in previous.files.all()],
            reason=PendingFileDeletion.Reason.REPLACED,
            not_before=timezone.now(),
        )
        previous.delete()
    result = Result.objects.create(
        task=task,
        run_number=run_number,
        actual_status=actual_status,
        expected_status=task.expected_status,
        # A run that could not be carried out proves nothing, whatever was expected: a
        # failed run never passes (API.md's `actual_status == expected_status` would let
        # an unreachable site "pass" a check that expects failure).
        passed=not run_failed and actual_status == task.expected_status,
        history=history,
        warnings=list(warnings or []),
    )
    ResultFile.objects.bulk_create(
        [
            ResultFile(
                result=result, kind=f.kind, storage=f.storage, name=f.name, size=f.size, content_type=f.content_type
            )
            for f in files
        ]
    )
    # The files are referenced now: they are no longer candidates for deletion.
    for f in files:
        PendingFileDeletion.objects.filter(storage=f.storage, name=f.name).delete()
    if replaced_ids:
        transaction.on_commit(lambda: pending_file_deletions_process(ids=replaced_ids))
    return result


def result_files_discard(*, files: list[StoredFile]) -> None:
    """Delete files a run uploaded but may not record (it was cancelled or superseded meanwhile)."""
    ids = _journal(
        files=[(f.storage, f.name) for f in files],
        reason=PendingFileDeletion.Reason.UNCLAIMED,
        not_before=timezone.now(),
    )
    pending_file_deletions_process(ids=ids)


# DELETING
# ------------------------------------------------------------------------------


def result_files_forget(*, task_ids: Iterable[int], reason: str = PendingFileDeletion.Reason.DELETED) -> list[int]:
    """Journal every file of these tasks' results for deletion; call in the transaction that deletes the rows.

    Returns the journal ids to hand to `pending_file_deletions_process` after the commit.
    """
    files = ResultFile.objects.filter(result__task_id__in=list(task_ids)).values_list("storage", "name")
    return _journal(files=list(files), reason=reason, not_before=timezone.now())


def result_delete(*, result: Result) -> DeletionReport:
    """Delete a result and its files. A file the storage refuses now is retried later, and reported."""
    kinds = dict(result.files.values_list("name", "kind"))
    with transaction.atomic():
        journal_ids = result_files_forget(task_ids=[result.task_id])
        result.delete()
    report = DeletionReport(database_deleted=True)
    for outcome in pending_file_deletions_process(ids=journal_ids):
        kind = kinds.get(outcome.name, "file")
        if outcome.error is None:
            report.files_deleted.append(kind)
        else:
            report.warnings.append(
                f"The {kind} file could not be deleted from storage now ({outcome.error}); "
                "the deletion is recorded and will be retried."
            )
    return report


@dataclass(frozen=True)
class DeletionOutcome:
    storage: str
    name: str
    error: str | None  # None: the file is gone


def _backoff(attempts: int) -> timedelta:
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), RETRY_BACKOFF_MAX)


def pending_file_deletions_process(*, ids: list[int] | None = None, limit: int = 200) -> list[DeletionOutcome]:
    """Delete journalled files: the given rows, or every row that is due. Safe to run concurrently.

    Each row is locked while its file is deleted (others skip it), and a file some Result
    references again is left alone.
    """
    candidates = PendingFileDeletion.objects.all()
    if ids is None:
        candidates = candidates.filter(not_before__lte=timezone.now()).order_by("not_before")
    else:
        candidates = candidates.filter(pk__in=ids)
    outcomes = []
    for pk in list(candidates.values_list("pk", flat=True)[:limit]):
        with transaction.atomic():
            row = PendingFileDeletion.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
            if row is None:  # done meanwhile, or another process holds it
                continue
            if ResultFile.objects.filter(storage=row.storage, name=row.name).exists():
                row.delete()
                continue
            try:
                result_storage.get_storage(row.storage).delete(row.name)
            except Exception as error:  # any storage failure is retried later, never raised to the caller
                row.attempts += 1
                row.last_error = f"{type(error).__name__}: {error}"[:2000]
                row.not_before = timezone.now() + _backoff(row.attempts)
                row.save(update_fields=["attempts", "last_error", "not_before"])
                logger.warning("could not delete %s:%s (attempt %s): %s", row.storage, row.name, row.attempts, error)
                outcomes.append(DeletionOutcome(row.storage, row.name, row.last_error))
            else:
                row.delete()
                outcomes.append(DeletionOutcome(row.storage, row.name, None))
    return outcomes


def history_document(*, task_id: int, run_number: int, steps: list, history: list, error: str) -> bytes:
    """The history file: what ran, each step's outcome and timing, and why the run stopped."""
    document = {"task_id": task_id, "run": run_number, "steps": steps, "history": history, "error": error}
    return json.dumps(document, indent=2, ensure_ascii=False).encode()
