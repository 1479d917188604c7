from django.core.management.base import BaseCommand

from accounts import services


class Command(BaseCommand):
    help = (
        "Delete expired refresh-token records, and login sessions that ended (expired or revoked) more than "
        "--retention-days ago, and security events older than SECURITY_EVENTS_RETENTION_DAYS. Safe to run at any "
        "time; celery beat runs it daily."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--retention-days", type=int, default=30, help="Keep ended sessions this long (default 30)."
        )

    def handle(self, *args, retention_days, **options):
        report = services.auth_records_prune(retention_days=retention_days)
        self.stdout.write(f"Deleted {report.sessions} session(s) and {report.refresh_tokens} refresh-token record(s).")
        self.stdout.write(f"Deleted {report.security_events} security event(s).")
