"""manage.py rotate_rsa_key: add a new RSA key pair to the keyring; it becomes the published public key."""

from django.core.management.base import BaseCommand, CommandError

from config import crypto


class Command(BaseCommand):
    help = (
        "Add a new RSA key pair to the keyring (RSA_PRIVATE_KEY_FILE) and make it the current key: "
        "GET /api/v1/crypto/public-key publishes it, and new provider keys are sealed with it. The older keys stay "
        "in the file, so what was encrypted or sealed with them still decrypts, until `manage.py "
        "reencrypt_provider_keys` has moved every stored key to the new one and retired them. Every web and worker "
        "process reads the same file and picks the change up at its next use. Prints the new kid."
    )

    def handle(self, *args, **options):
        try:
            before = crypto.keyring().kids
            kid = crypto.rotate()
        except (crypto.CryptoError, OSError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"New current RSA key {kid} in {crypto.keyring_path()}.")
        self.stdout.write(f"Older keys still decrypting: {', '.join(before)}.")
        self.stdout.write("Next: manage.py reencrypt_provider_keys, once clients have fetched the new public key.")
