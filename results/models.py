"""What a task run produced (a GIF, a replay script, the step history) and the files still to delete."""

from django.db import models
from django.utils import timezone

from config.models import TimeStampedModel
from tasks.models import ExpectedStatus, Task


class ActualStatus(models.TextChoices):
    SUCCESS = "success"
    FAILURE = "failure"


class FileKind(models.TextChoices):
    GIF = "gif", "GIF recording"
    SCRIPT = "script", "Replay script"
    HISTORY = "history", "Step history (JSON)"


class Result(TimeStampedModel):
    """The outcome of a task's latest finished run: one per task, replaced by the next run."""

    task = models.OneToOneField(Task, on_delete=models.CASCADE, related_name="result")
    run_number = models.PositiveIntegerField()
    actual_status = models.CharField(max_length=8, choices=ActualStatus.choices)
    expected_status = models.CharField(max_length=8, choices=ExpectedStatus.choices)
    passed = models.BooleanField()
    history = models.JSONField(default=list, blank=True)
    # Things the owner should know about the files (e.g. one kept locally because the
    # file store refused it).
    warnings = models.JSONField(default=list, blank=True)
    # What an agent run spent on its language model: {model_calls, input_tokens, output_tokens}; NULL for other runs.
    usage = models.JSONField(null=True, blank=True)

    def __str__(self):
        return f"Result of task #{self.task_id} run {self.run_number}"


class ResultFile(models.Model):
    """One stored file of a result: which storage (a STORAGES alias) keeps it, under which name."""

    result = models.ForeignKey(Result, on_delete=models.CASCADE, related_name="files")
    kind = models.CharField(max_length=16, choices=FileKind.choices)
    storage = models.CharField(max_length=64)
    name = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField(default=0)
    content_type = models.CharField(max_length=100)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["result", "kind"], name="results_resultfile_one_per_kind")]

    def __str__(self):
        return f"{self.kind}: {self.storage}:{self.name}"


class PendingFileDeletion(models.Model):
    """A stored file that must go: its owner row is gone, the file is deleted by the next retry.

    Rows are written in the same transaction that removes (or never commits) the database
    record of the file, and deleted once the storage confirms the file is gone, so a file
    is never orphaned by a crash, a rollback or an unreachable storage.
    """

    class Reason(models.TextChoices):
        DELETED = "deleted", "Its result or task was deleted"
        REPLACED = "replaced", "A newer run replaced its result"
        UNCLAIMED = "unclaimed", "Uploaded by a run that never recorded it"

    storage = models.CharField(max_length=64)
    name = models.CharField(max_length=255)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # Not retried before this instant (back-off; an upload in progress is given time to be claimed).
    not_before = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["storage", "name"], name="results_pendingfiledeletion_unique_file")
        ]
        indexes = [models.Index(fields=["not_before"], name="results_pending_due_idx")]

    def __str__(self):
        return f"{self.storage}:{self.name}"
