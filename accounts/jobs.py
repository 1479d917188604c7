"""Celery jobs of the accounts app: thin wrappers over services."""

from celery import shared_task

from accounts import services


@shared_task(name="accounts.prune_auth_records")
def prune_auth_records(retention_days: int = 30) -> dict:
    """Daily housekeeping (celery beat): expired refresh-token records and long-ended sessions."""
    report = services.auth_records_prune(retention_days=retention_days)
    return {"sessions": report.sessions, "refresh_tokens": report.refresh_tokens}
