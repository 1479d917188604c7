"""manage.py create_api_key --username NAME --name LABEL [--expires-days N]: prints the new key once."""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apikeys import services
from config.errors import ServiceError


class Command(BaseCommand):
    help = (
        "Create an API key for a user and print it once, alone on standard output "
        "(KEY=$(manage.py create_api_key ...) works); details go to standard error."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", required=True, help="Owner of the key (case-insensitive).")
        parser.add_argument("--name", required=True, help="A label to recognise the key by.")
        parser.add_argument(
            "--expires-days", type=int, default=None, help="Days until the key expires (1..3650); default: never."
        )

    def handle(self, *args, username, name, expires_days, **options):
        User = get_user_model()
        try:
            user = User.objects.get_by_natural_key(username)
        except User.DoesNotExist:
            raise CommandError(f"No user named {username!r}.") from None
        if not user.is_active:
            raise CommandError(f"User {user.username!r} is inactive: their keys would not work.")
        try:
            key, plaintext = services.api_key_create(user=user, name=name, expires_days=expires_days)
        except ValidationError as error:
            problems = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items())
            raise CommandError(problems) from None
        except ServiceError as error:
            raise CommandError(error.detail) from None
        expiry = f"expires {key.expires_at:%Y-%m-%d %H:%M} UTC" if key.expires_at else "does not expire"
        self.stderr.write(
            f"Created API key {key.pk} {key.name!r} ({key.prefix}…) for {user.username}; it {expiry}.\n"
            "Copy it now: it is shown only this once."
        )
        self.stdout.write(plaintext)
