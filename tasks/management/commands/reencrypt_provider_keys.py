"""manage.py reencrypt_provider_keys: re-seal stored provider keys with the current RSA key, retire the old keys."""

from django.core.management.base import BaseCommand, CommandError

from accounts import services as account_services
from config import crypto
from tasks import services


class Command(BaseCommand):
    help = (
        "Re-seal every stored provider key with the current RSA key (the last one of RSA_PRIVATE_KEY_FILE, see "
        "`manage.py rotate_rsa_key`), then remove the older RSA keys from the keyring. A key still in use by a row "
        "that could not be re-sealed is kept. After retirement, anything encrypted with an old public key no longer "
        "decrypts: clients still holding the old public key (or its kid) get 400 until they fetch the current one "
        "from GET /api/v1/crypto/public-key. --keep-old re-seals only, and leaves the old keys in the keyring."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--keep-old",
            action="store_true",
            help="Re-seal the stored keys but keep the older RSA keys in the keyring (they still decrypt).",
        )

    def handle(self, *args, keep_old=False, **options):
        try:
            ring = crypto.keyring()
            moved = services.provider_keys_reencrypt()
            moved_totp = account_services.mfa_totp_reencrypt()
        except (crypto.CryptoError, OSError) as error:
            raise CommandError(str(error)) from None
        current = ring.current.kid
        self.stdout.write(
            f"Re-encrypted {moved} provider key(s) and {moved_totp} TOTP secret(s) with RSA key {current}."
        )
        # TOTP secrets (accounts) are sealed with the same keyring: a key either still needs stays.
        in_use = (services.provider_key_kids_in_use() | account_services.mfa_totp_kids_in_use()) - {current}
        older = [kid for kid in crypto.keyring().kids if kid != current]
        if keep_old:
            self.stdout.write(f"Kept {len(older)} older RSA key(s) in the keyring (--keep-old).")
            return
        if in_use:
            self.stderr.write(
                f"Stored keys still sealed with {', '.join(sorted(in_use))} (they did not open: see the log); "
                "those RSA keys are kept."
            )
        try:
            retired = crypto.retire(set(older) - in_use)
        except (crypto.CryptoError, OSError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Retired {len(retired)} older RSA key(s){': ' + ', '.join(retired) if retired else ''}.")
