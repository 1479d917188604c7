"""Celery jobs of the results app."""

from celery import shared_task

from results import services


@shared_task(name="results.retry_file_deletions")
def retry_file_deletions() -> dict:
    """Delete journalled files that are due (storage was unreachable, or an upload was never claimed)."""
    outcomes = services.pending_file_deletions_process()
    return {"deleted": sum(o.error is None for o in outcomes), "failed": sum(o.error is not None for o in outcomes)}
