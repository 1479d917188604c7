"""manage.py setup_auth: the first admin account and, optionally, its first API key.

It lives in apikeys, not accounts, because it uses both apps' services and apikeys is the app
that may depend on accounts (never the reverse).
"""

from django.core.management.base import BaseCommand, CommandError

from accounts.cli import create_user_or_fail, read_password
from accounts.models import User
from apikeys.services import api_key_create


class Command(BaseCommand):
    help = (
        "First-run setup: create the first admin account and, optionally, an API key for it. "
        "Interactive by default; --username/--email with --password-stdin and --no-input make it scriptable."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", help="Admin username (asked for when omitted).")
        parser.add_argument("--email", help="Admin email (asked for when omitted).")
        parser.add_argument("--password-stdin", action="store_true", help="Read the password from standard input.")
        parser.add_argument("--api-key", dest="api_key", help="Also create an API key with this name.")
        parser.add_argument("--no-input", dest="interactive", action="store_false", help="Never prompt.")

    def handle(self, *args, username, email, password_stdin, api_key, interactive, **options):
        if User.objects.filter(is_staff=True).exists():
            self.stdout.write("An admin account already exists; nothing to set up. Use create_user to add more.")
            return
        username = username or self._ask("Admin username", interactive)
        email = email if email is not None else self._ask("Admin email", interactive, default="")
        password = read_password(stdin=password_stdin)
        admin = create_user_or_fail(username=username, email=email, password=password, admin=True)
        self.stdout.write(
            self.style.SUCCESS(f"Created admin {admin.username!r}. Sign in at /admin/ or POST /api/v1/auth/login.")
        )
        if (
            api_key is None
            and interactive
            and self._ask("Create an API key for it now? [y/N]", True, "n").lower() == "y"
        ):
            api_key = self._ask("Key name", True, default="admin")
        if api_key:
            self._create_api_key(admin, api_key)

    def _create_api_key(self, user, name):
        _, plaintext = api_key_create(user=user, name=name)
        self.stdout.write(f"API key (shown once, store it now): {plaintext}")

    def _ask(self, label, interactive, default=None):
        if not interactive:
            if default is None:
                raise CommandError(f"{label} is required with --no-input.")
            return default
        answer = input(f"{label}{f' [{default}]' if default else ''}: ").strip()
        if not answer and default is None:
            raise CommandError(f"{label} is required.")
        return answer or default
