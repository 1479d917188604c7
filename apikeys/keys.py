"""The API key format: generation, checksum, well-formedness and hashing. Pure functions, no database.

A key is `sk_` + 43 random base62 characters (256 bits from `secrets`) + a 6-character
base62 CRC32 of the random part, 52 characters in all.

Regex for secret scanners: `\\bsk_[0-9A-Za-z]{49}\\b`. The checksum lets a mistyped or
truncated key be rejected without touching the database, and lets scanners tell a real
key from a random string. Base62 (no `-` or `_` after the prefix) keeps the whole key
selectable with a double click.
"""

import hashlib
import secrets
import zlib

from config.requests import API_KEY_PREFIX

PREFIX = API_KEY_PREFIX
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LENGTH = 43  # 43 * log2(62) = 256.03 bits
CHECKSUM_LENGTH = 6  # 62**6 > 2**32, so every CRC32 fits
KEY_LENGTH = len(PREFIX) + RANDOM_LENGTH + CHECKSUM_LENGTH
# Shown in lists, the admin and the CLI to tell keys apart: the prefix and 8 random characters
# (47 bits, so two keys of one user practically never share it; the other 208 bits stay secret).
DISPLAY_PREFIX_LENGTH = len(PREFIX) + 8
KEY_REGEX = rf"\bsk_[0-9A-Za-z]{{{RANDOM_LENGTH + CHECKSUM_LENGTH}}}\b"

_ALPHABET_SET = frozenset(ALPHABET)


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def checksum(random_part: str) -> str:
    """CRC32 of the random part, in base62, left-padded to 6 characters."""
    return _base62(zlib.crc32(random_part.encode("ascii")), CHECKSUM_LENGTH)


def generate() -> str:
    """A new plaintext key."""
    random_part = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    return PREFIX + random_part + checksum(random_part)


def is_well_formed(candidate: str) -> bool:
    """Length, prefix, alphabet and checksum. Cheap, and decides before any query; any str is safe to pass."""
    if len(candidate) != KEY_LENGTH or not candidate.startswith(PREFIX):
        return False
    body = candidate[len(PREFIX) :]
    if not _ALPHABET_SET.issuperset(body):  # also rules out every non-ASCII character
        return False
    random_part, check = body[:RANDOM_LENGTH], body[RANDOM_LENGTH:]
    return secrets.compare_digest(checksum(random_part), check)


def hash_key(key: str) -> str:
    """SHA-256 (hex) of the key: what the database stores and looks keys up by."""
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LENGTH]
