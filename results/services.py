"""Results: storing a run's files and its Result row, deleting them, and retrying deletions that failed.

The file store and the database cannot share a transaction, so every stored file is
written down in `PendingFileDeletion` *before* the step that could orphan it:

- a run's files are journalled (reason "unclaimed", due after a grace period) before they
  are uploaded, and the journal rows are removed in the transaction that records the
  Result; a crash or a rollback in between leaves the rows, and the retry job deletes the
  files;
- deleting a result or task journals its files in the deleting transaction, then tries to
  delete them at once; what cannot be deleted now stays journalled and is retried.

Uploads to a remote storage (Cloudinary) are retried in the worker, a bounded number of times
with back-off (`results.storage.save_with_retries`), rather than by re-running the Celery
job: the job's second delivery finds its run already `running` and does nothing (that is what
keeps it idempotent), and the files are only in this process's memory. A file whose storage
keeps failing is kept in local storage instead, and the result says so in `warnings`.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from results import storage as result_storage
from results.models import ActualStatus, PendingFileDeletion, Result, ResultFile

logger = logging.getLogger(__name__)

# How long an uploaded file may wait to be claimed by its Result before it counts as orphaned.
UNCLAIMED_GRACE = timedelta(minutes=30)
# Retry back-off for deletions the storage refused: 1, 2, 4 ... minutes, at most 6 hours.
RETRY_BACKOFF_MAX = timedelta(hours=6)


@dataclass(frozen=True)
class StoredFile:
    """A file saved in a storage, not yet (or no longer) referenced by a Result."""

    kind: str
    storage: str
    name: str
    size: int
    content_type: str
    # Set when the file is not where settings.RESULTS_STORAGES wanted it (kept locally): says why.
    warning: str = ""


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


class _SkippedUpload(Exception):
    """Not tried: the same storage already failed for an earlier file of the run."""


def _upload_failure(error: Exception) -> str:
    if isinstance(error, _SkippedUpload):
        return "not tried: it failed for an earlier file of this run"
    if isinstance(error, result_storage.StorageRejected):
        return "it refused the upload"
    if result_storage.is_transient(error):
        return f"no answer, or an error, after {max(settings.RESULTS_UPLOAD_ATTEMPTS, 1)} tries"
    return f"{type(error).__name__}"


def _journal_unclaimed(alias: str, name: str) -> None:
    _journal(
        files=[(alias, name)], reason=PendingFileDeletion.Reason.UNCLAIMED, not_before=timezone.now() + UNCLAIMED_GRACE
    )


def result_files_upload(*, task_id: int, run_number: int, artifacts: dict[str, bytes]) -> list[StoredFile]:
    """Save a run's files (`{kind: content}`) under their deterministic names, journalled first so none is orphaned.

    A file whose storage keeps failing (after the retries) is saved in local storage instead,
    with a `warning`; once a storage has failed for good, the run's later files skip it. Raises
    only when local storage fails too.
    """
    planned = []
    for kind, content in artifacts.items():
        alias = result_storage.storage_alias_for(kind)
        name = result_storage.result_file_name(task_id=task_id, run_number=run_number, kind=kind)
        planned.append((kind, content, alias, name))
    _journal(
        files=[(alias, name) for _, _, alias, name in planned],
        reason=PendingFileDeletion.Reason.UNCLAIMED,
        not_before=timezone.now() + UNCLAIMED_GRACE,
    )
    stored = []
    failed: set[str] = set()  # services that failed for good in this run
    fallback = result_storage.fallback_alias()
    for kind, content, alias, name in planned:
        warning = ""
        saved_alias = alias
        service = result_storage.service_of(alias)
        try:
            if service in failed:
                raise _SkippedUpload
            saved_name = result_storage.save_with_retries(alias=alias, name=name, content=content)
        except Exception as error:
            if alias == fallback:
                raise
            failed.add(service)
            if not isinstance(error, _SkippedUpload):
                logger.warning(
                    "task %s run %s: %s file kept in %s storage: %s: %s",
                    task_id,
                    run_number,
                    kind,
                    fallback,
                    type(error).__name__,
                    error,
                )
            # The owner is told what happened, not the storage's internals (hosts, request ids).
            warning = (
                f"The {kind} file could not be stored in {result_storage.storage_label(alias)} "
                f"({_upload_failure(error)}); it is kept in the server's local storage."
            )
            # The failed upload may still have arrived: its journal row (above) gets it deleted later.
            _journal_unclaimed(fallback, name)
            saved_alias = fallback
            saved_name = result_storage.save_replacing(alias=fallback, name=name, content=content)
        if saved_name != name:  # the storage renamed it after all: journal the real name too
            _journal_unclaimed(saved_alias, saved_name)
        stored.append(
            StoredFile(
                kind=kind,
                storage=saved_alias,
                name=saved_name,
                size=len(content),
                content_type=result_storage.CONTENT_TYPES[kind],
                warning=warning,
            )
        )
    return stored


def result_record(
    *,
    task_id: int,
    run_number: int,
    expected_status: str,
    files: list[StoredFile],
    expectation_met: bool,
    run_failed: bool,
    history: list,
    warnings: list[str] | None = None,
    usage: dict | None = None,
) -> Result:
    """Record a run's Result, replacing the previous run's (whose files are then deleted).

    ``usage`` is an agent run's model usage ({model_calls, input_tokens, output_tokens}).

    Call inside the transaction that finishes the run, with the task row locked.
    """
    actual_status = ActualStatus.SUCCESS if expectation_met else ActualStatus.FAILURE
    previous = Result.objects.filter(task_id=task_id).prefetch_related("files").first()
    replaced_ids = []
    if previous is not None:
        replaced_ids = _journal(
            files=[(f.storage, f.name) for f in previous.files.all()],
            reason=PendingFileDeletion.Reason.REPLACED,
            not_before=timezone.now(),
        )
        previous.delete()
    result = Result.objects.create(
        task_id=task_id,
        run_number=run_number,
        actual_status=actual_status,
        expected_status=expected_status,
        # A run that could not be carried out proves nothing, whatever was expected: a
        # failed run never passes (API.md's `actual_status == expected_status` would let
        # an unreachable site "pass" a check that expects failure).
        passed=not run_failed and actual_status == expected_status,
        history=history,
        warnings=list(warnings or []),
        usage=usage,
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
            # The details (hosts, request ids) go to the journal row and the log, not to the client.
            report.warnings.append(
                f"The {kind} file could not be deleted from {result_storage.storage_label(outcome.storage)} now; "
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
    # A storage that did not answer is not called again in this pass: a DELETE request waits
    # for one timeout, not one per file.
    unreachable: dict[str, str] = {}
    for pk in list(candidates.values_list("pk", flat=True)[:limit]):
        with transaction.atomic():
            row = PendingFileDeletion.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
            if row is None:  # done meanwhile, or another process holds it
                continue
            if ResultFile.objects.filter(storage=row.storage, name=row.name).exists():
                row.delete()
                continue
            service = result_storage.service_of(row.storage)
            try:
                if service in unreachable:
                    raise result_storage.StorageUnavailable(f"{unreachable[service]} (not tried again in this pass)")
                result_storage.get_storage(row.storage).delete(row.name)
            except Exception as error:  # any storage failure is retried later, never raised to the caller
                if result_storage.is_transient(error) and service not in unreachable:
                    unreachable[service] = str(error)
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


def remote_orphan_delete(*, storage: str, name: str) -> bool:
    """Delete a file no result references and nothing journals (checked again now); False if it is claimed."""
    if (
        ResultFile.objects.filter(storage=storage, name=name).exists()
        or PendingFileDeletion.objects.filter(storage=storage, name=name).exists()
    ):
        return False
    result_storage.get_storage(storage).delete(name)
    return True
