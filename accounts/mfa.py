"""The two-factor formats: TOTP secrets and codes, recovery codes, mfa_tokens. Pure functions, no database.

- TOTP (RFC 6238 through pyotp): a 160-bit secret (the size RFC 4226 §4 recommends), 6 digits,
  30-second steps, SHA-1 (what every authenticator app supports). A code is accepted for the
  current step and one step either side (clock drift, and the time it takes to type it), and
  `totp_matching_step` says WHICH step matched, so the caller can refuse a step already used
  (replay) rather than only asking pyotp "is it valid".
- Recovery codes: 16 characters of base32 (80 bits from `secrets`), shown as four groups
  of four (`abcd-efgh-ijkl-mnop`). Stored as SHA-256 of the user id and the normalised code:
  at 80 bits a stolen table cannot be brute-forced, so a slow hasher would buy nothing but a
  slow login, and the user id makes equal codes of two users hash differently.
- mfa_token: 256 bits, URL-safe; the server keeps its SHA-256 only.

A code a user types is normalised first (spaces and dashes dropped, lower case): six digits
is a TOTP code, sixteen base32 characters a recovery code, anything else neither.
"""

import hashlib
import hmac
import secrets
import time

import pyotp

ISSUER = "Gatehouse"
TOTP_DIGITS = 6
TOTP_PERIOD_SECONDS = 30
TOTP_SECRET_BYTES = 20  # 160 bits, RFC 4226 §4
# Steps either side of now whose code is still accepted (RFC 6238 §5.2 suggests one for network delay).
TOTP_VALID_WINDOW = 1

RECOVERY_CODE_COUNT = 10
RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base32, lower case
RECOVERY_CODE_LENGTH = 16  # 80 bits
RECOVERY_GROUP = 4

MFA_TOKEN_BYTES = 32

TOTP = "totp"
RECOVERY_CODE = "recovery_code"
METHODS = (TOTP, RECOVERY_CODE)

_RECOVERY_SET = frozenset(RECOVERY_ALPHABET)


# TOTP
# ------------------------------------------------------------------------------


def totp_secret_new() -> str:
    """A new base32 secret (what authenticator apps take), without padding."""
    return pyotp.random_base32(length=TOTP_SECRET_BYTES * 8 // 5)


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD_SECONDS, issuer=ISSUER)


def totp_provisioning_uri(*, secret: str, account_name: str) -> str:
    """The otpauth:// URL an authenticator app reads from a QR code (Key Uri Format)."""
    return _totp(secret).provisioning_uri(name=account_name, issuer_name=ISSUER)


def totp_matching_step(*, secret: str, code: str, for_time: float | None = None) -> int | None:
    """The time step (RFC 6238 T) whose code is `code`, within the valid window; None if none matches.

    Every step of the window is compared (in constant time each), so the time taken does not
    say which step matched or how close a guess came."""
    now = time.time() if for_time is None else for_time
    totp = _totp(secret)
    current = totp.timecode(now)
    matched = None
    for step in range(current - TOTP_VALID_WINDOW, current + TOTP_VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            matched = step
    return matched


# CODES AS TYPED
# ------------------------------------------------------------------------------


def normalise(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def code_kind(normalised: str) -> str | None:
    """TOTP, RECOVERY_CODE, or None when the (normalised) input can be neither."""
    if len(normalised) == TOTP_DIGITS and normalised.isascii() and normalised.isdigit():
        return TOTP
    if len(normalised) == RECOVERY_CODE_LENGTH and _RECOVERY_SET.issuperset(normalised):
        return RECOVERY_CODE
    return None


# RECOVERY CODES
# ------------------------------------------------------------------------------


def recovery_code_new() -> str:
    """A new code as the user sees it: four dash-separated groups of four base32 characters."""
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
    return "-".join(raw[i : i + RECOVERY_GROUP] for i in range(0, RECOVERY_CODE_LENGTH, RECOVERY_GROUP))


def recovery_code_hash(*, user_id: int, normalised: str) -> str:
    return hashlib.sha256(f"gatehouse.recovery-code.v1:{user_id}:{normalised}".encode()).hexdigest()


# MFA TOKENS (the pending second step of a login)
# ------------------------------------------------------------------------------


def mfa_token_new() -> str:
    return secrets.token_urlsafe(MFA_TOKEN_BYTES)


def mfa_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
