import getpass
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts import services
from config.errors import ServiceError


def read_password(*, stdin: bool, prompt_twice: bool = True) -> str:
    """The password from standard input (one line) or typed twice at a prompt."""
    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CommandError("No password on standard input.")
        return password
    if not sys.stdin.isatty():
        raise CommandError("No terminal to ask for a password: pass --password-stdin and pipe it in.")
    password = getpass.getpass("Password: ")
    if prompt_twice and password != getpass.getpass("Password (again): "):
        raise CommandError("The two passwords did not match.")
    return password


def create_user_or_fail(*, username: str, email: str, password: str, name: str = "", admin: bool = False):
    """accounts.services.user_create with its errors turned into one-line CLI errors."""
    try:
        return services.user_create(username=username, email=email, password=password, name=name, is_staff=admin)
    except ServiceError as error:
        raise CommandError(error.detail) from None
    except ValidationError as error:
        messages = [message for field_messages in error.message_dict.values() for message in field_messages]
        raise CommandError(" ".join(messages)) from None


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
