"""Celery jobs of the accounts app: thin wrappers over services."""

from smtplib import SMTPException

from celery import shared_task

from accounts import services


@shared_task(name="accounts.prune_auth_records")
def prune_auth_records(retention_days: int = 30) -> dict:
    """Daily housekeeping (celery beat): expired refresh-token records, long-ended sessions, and security
    events past SECURITY_EVENTS_RETENTION_DAYS."""
    report = services.auth_records_prune(retention_days=retention_days)
    return {
        "sessions": report.sessions,
        "refresh_tokens": report.refresh_tokens,
        "security_events": report.security_events,
    }


# An SMTP server that is down, refuses or times out (SMTPException is an OSError, listed for the reader):
# try again after about 10 s, 20 s, 40 s... (jittered, at most 10 minutes apart), 6 tries in all.
@shared_task(
    name=services.MAIL_JOB,
    autoretry_for=(SMTPException, OSError),
    retry_backoff=10,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
)
def send_account_mail(kind: str, **params) -> int:
    """Send an account mail (reset link, verification link, notices), queued by the services after commit."""
    return services.account_mail_deliver(kind=kind, **params)
