"""Password hashers beyond Django's own."""

from django.contrib.auth.hashers import BCryptPasswordHasher


class LegacyBCryptPasswordHasher(BCryptPasswordHasher):
    """Verifies plain bcrypt hashes imported from older systems (never used for new hashes).

    bcrypt 5 raises on passwords over 72 bytes where bcrypt 4 silently truncated them; a
    password that long cannot match such a hash, so it is a failed check, not a crash.
    """

    def verify(self, password, encoded):
        try:
            return super().verify(password, encoded)
        except ValueError:
            return False
