"""A safety net for deletions that bypass results.services: a cascade (deleting a user deletes
their tasks, results and result files) must not orphan the stored files.

The services journal and delete files themselves; this only makes sure that any ResultFile
row deleted by other means leaves a PendingFileDeletion behind, in the same transaction, for
the retry job (results.retry_file_deletions) to act on.
"""

from django.db.models.signals import pre_delete
from django.dispatch import receiver

from results.models import PendingFileDeletion, ResultFile


@receiver(pre_delete, sender=ResultFile, dispatch_uid="results.journal_deleted_file")
def journal_deleted_file(sender, instance: ResultFile, **kwargs):
    PendingFileDeletion.objects.get_or_create(
        storage=instance.storage, name=instance.name, defaults={"reason": PendingFileDeletion.Reason.DELETED}
    )
