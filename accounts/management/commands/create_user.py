"""manage.py create_user --username NAME [--email E] [--name N] [--admin] [--password-stdin]."""

from django.core.management.base import BaseCommand

from accounts.cli import create_user_or_fail, read_password


class Command(BaseCommand):
    help = (
        "Create a user account. Prompts for the password twice, or reads it from standard input "
        'with --password-stdin (for scripts: `echo "$PASS" | manage.py create_user --username bob --password-stdin`).'
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", required=True, help="Login name, unique regardless of case.")
        parser.add_argument("--email", default="", help="Email address, unique regardless of case (optional).")
        parser.add_argument("--name", default="", help="Display name (optional).")
        parser.add_argument("--admin", action="store_true", help="Make the user an admin (staff and superuser).")
        parser.add_argument("--password-stdin", action="store_true", help="Read the password from standard input.")

    def handle(self, *args, username, email, name, admin, password_stdin, **options):
        password = read_password(stdin=password_stdin)
        user = create_user_or_fail(username=username, email=email, password=password, name=name, admin=admin)
        role = "admin" if user.is_staff else "user"
        self.stdout.write(self.style.SUCCESS(f"Created {role} {user.username!r} (id {user.pk})."))
