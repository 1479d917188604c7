"""manage.py create_api_key --username NAME --name LABEL [--expires-days N] [--scope S ...]: prints the new key once."""

from django.core.management.base import BaseCommand, CommandError

from accounts.cli import add_user_argument, user_or_fail
from apikeys import services
from config import scopes as scope_names
from config.commands import service_errors_as_command_errors


class Command(BaseCommand):
    help = (
        "Create an API key for a user and print it once, alone on standard output "
        "(KEY=$(manage.py create_api_key ...) works); details go to standard error."
    )

    def add_arguments(self, parser):
        add_user_argument(parser, help="Owner of the key")
        parser.add_argument("--name", required=True, help="A label to recognise the key by.")
        parser.add_argument(
            "--expires-days", type=int, default=None, help="Days until the key expires (1..3650); default: never."
        )
        parser.add_argument(
            "--scope",
            dest="scopes",
            action="append",
            choices=scope_names.ALL_SCOPES,
            metavar="SCOPE",
            help=f"Limit the key to this scope; repeat for several. One of: {', '.join(scope_names.ALL_SCOPES)}. "
            "Default: every scope.",
        )

    def handle(self, *args, username, name, expires_days, scopes, **options):
        user = user_or_fail(username)
        if not user.is_active:
            raise CommandError(f"User {user.username!r} is inactive: their keys would not work.")
        with service_errors_as_command_errors():
            key, plaintext = services.api_key_create(user=user, name=name, expires_days=expires_days, scopes=scopes)
        expiry = f"expires {key.expires_at:%Y-%m-%d %H:%M} UTC" if key.expires_at else "does not expire"
        self.stderr.write(
            f"Created API key {key.pk} {key.name!r} ({key.prefix}…) for {user.username}; it {expiry}.\n"
            f"Scopes: {', '.join(key.scopes)}.\n"
            "Copy it now: it is shown only this once."
        )
        self.stdout.write(plaintext)
