from django.core.management.base import BaseCommand, CommandError

from accounts.jwks import KeyringError
from accounts.tokens import jwt_keys_rotate


class Command(BaseCommand):
    help = (
        "Add a new JWT signing key to JWT_PRIVATE_KEY_FILE (created if missing; RS*, ES* and EdDSA only). New "
        "tokens are signed with it at once; tokens signed by older keys keep verifying until they expire, and "
        "keys no live token can be signed with are dropped."
    )

    def handle(self, *args, **options):
        try:
            kid, dropped = jwt_keys_rotate()
        except KeyringError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"New signing key {kid}.")
        if dropped:
            self.stdout.write(f"Dropped {len(dropped)} expired key(s): {', '.join(dropped)}.")
