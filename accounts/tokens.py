"""SimpleJWT tokens bound to a login session (`sid` claim). SimpleJWT signs and verifies; we add the checks it lacks.

And the tokens of the links the accounts mails carry: password reset (Django's own generator) and email
verification (below)."""

import base64
import binascii
import hashlib
import json
import threading
from collections import OrderedDict
from datetime import datetime, timedelta

import jwt
from django.conf import settings
from django.core import signing
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.functional import cached_property
from rest_framework_simplejwt import settings as simplejwt_settings
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import TokenBackendError, TokenError
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts import jwks

SESSION_CLAIM = "sid"


# Verified tokens each process remembers (KeyringTokenBackend.decode): about 1 KB each.
VERIFIED_TOKENS_KEPT = 4096
MAX_HEADER_CHARS = 1024  # ours is under 120; a longer header is not ours and is not worth decoding


def _unverified_kid(token: str) -> str | None:
    """The `kid` of the token's header, unverified: it only picks the key that then verifies everything.
    Read here rather than by jwt.get_unverified_header, which validates the whole token a second time (about
    half the cost of a verification, measured)."""
    segment = token.split(".", 1)[0] if isinstance(token, str) else ""
    if not segment or len(segment) > MAX_HEADER_CHARS:
        return None
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


class KeyringTokenBackend(TokenBackend):
    """SimpleJWT's backend, signing with the newest key of the JWT keyring (accounts/jwks.py) and naming it
    in a `kid` header, and verifying with the live key the token's `kid` names. HS* is SimpleJWT's own.

    SimpleJWT 5.5's backend has one signing key and no header option, so encode() is its own here (the
    same claims, plus the header) and get_verifying_key() picks by kid; decode() is SimpleJWT's, with the
    audience and issuer it requires (PyJWT refuses a token that lacks either)."""

    def __init__(self, *, keyring_file: str, **options):
        super().__init__(**options)
        self.keyring_file = keyring_file
        self._verified: OrderedDict[str, dict] = OrderedDict()
        self._verified_lock = threading.Lock()

    @property
    def uses_keyring(self) -> bool:
        return not self.algorithm.startswith("HS")

    @property
    def keep_keys_for(self) -> timedelta:
        """How long a superseded key must still verify: the longest a token it signed can live."""
        api_settings = simplejwt_settings.api_settings
        return max(api_settings.ACCESS_TOKEN_LIFETIME, api_settings.REFRESH_TOKEN_LIFETIME) + self.get_leeway()

    def keyring(self) -> jwks.Keyring:
        return jwks.load(self.keyring_file, self.algorithm)

    def encode(self, payload: dict) -> str:
        if not self.uses_keyring:
            return super().encode(payload)
        claims = {**payload, "aud": self.audience, "iss": self.issuer}
        key = self.keyring().current
        return jwt.encode(
            claims, key.private, algorithm=self.algorithm, headers={"kid": key.kid}, json_encoder=self.json_encoder
        )

    def get_verifying_key(self, token):
        if not self.uses_keyring:
            return super().get_verifying_key(token)
        kid = _unverified_kid(token)
        key = self.keyring().verifying_key(kid, keep_for=self.keep_keys_for) if kid is not None else None
        if key is None:  # no kid, or one that names no live key (never ours, or retired)
            raise TokenBackendError("Token is invalid")
        return key.public

    def decode(self, token, verify=True) -> dict:
        """SimpleJWT's decode, remembering the tokens it verified in this process.

        Verifying (the signature, and PyJWT's claim checks) was the largest part of authenticating a request
        (about 50 us of CPU, measured), and a client sends the same access token for its whole life. A token
        verified before is looked up by its exact text instead, so any changed byte is verified afresh; the
        token's own checks, exp among them, still run on every request (Token.verify). A new backend (settings
        changed) starts empty. A key retired from the keyring stops verifying new tokens at once; tokens it
        verified before stay accepted here until they expire, as they would be by any service that verified
        them while the key was live.
        """
        if not verify:
            return super().decode(token, verify=False)
        with self._verified_lock:
            payload = self._verified.get(token)
            if payload is not None:
                self._verified.move_to_end(token)
                return dict(payload)
        payload = super().decode(token, verify=True)
        with self._verified_lock:
            self._verified[token] = dict(payload)
            if len(self._verified) > VERIFIED_TOKENS_KEPT:
                self._verified.popitem(last=False)
        return payload

    def jwks(self) -> dict:
        """The JWK Set of GET /.well-known/jwks.json: the live public keys; none with a shared secret."""
        if not self.uses_keyring:
            return {"keys": []}
        return self.keyring().jwks(keep_for=self.keep_keys_for)


_backend: KeyringTokenBackend | None = None


def token_backend() -> KeyringTokenBackend:
    """The backend of SIMPLE_JWT and JWT_PRIVATE_KEY_FILE, built once (again when a test changes them)."""
    global _backend
    if _backend is None:
        # The module's attribute, not an imported name: SimpleJWT rebinds it when a test changes SIMPLE_JWT.
        api_settings = simplejwt_settings.api_settings
        _backend = KeyringTokenBackend(
            algorithm=api_settings.ALGORITHM,
            signing_key=api_settings.SIGNING_KEY,
            verifying_key=api_settings.VERIFYING_KEY,
            audience=api_settings.AUDIENCE,
            issuer=api_settings.ISSUER,
            leeway=api_settings.LEEWAY,
            json_encoder=api_settings.JSON_ENCODER,
            keyring_file=settings.JWT_PRIVATE_KEY_FILE,
        )
    return _backend


@receiver(setting_changed)
def _forget_backend(*, setting, **kwargs) -> None:
    global _backend
    if setting in ("SIMPLE_JWT", "JWT_PRIVATE_KEY_FILE"):
        _backend = None


def jwt_keys_rotate() -> tuple[str, list[str]]:
    """`manage.py rotate_jwt_key`: a new signing key for JWT_ALGORITHM (RS*, ES*, EdDSA). Returns (its kid,
    the kids of superseded keys dropped because no live token can be signed with them)."""
    backend = token_backend()
    if not backend.uses_keyring:
        raise jwks.KeyringError(f"JWT_ALGORITHM is {backend.algorithm}: a shared secret, no keyring to rotate.")
    return jwks.rotate(backend.keyring_file, backend.algorithm, keep_for=backend.keep_keys_for)


class _SessionTokenMixin:
    def get_token_backend(self) -> KeyringTokenBackend:
        return token_backend()

    def verify(self) -> None:
        super().verify()
        iat = self.payload.get("iat")
        if not isinstance(iat, int | float):
            raise TokenError("Token has no valid 'iat' claim")
        # A token "issued in the future" was not issued by us (or our clock is broken).
        if datetime_from_epoch(iat) > self.current_time + self.get_token_backend().get_leeway():
            raise TokenError("Token 'iat' claim is in the future")
        if not isinstance(self.payload.get(SESSION_CLAIM), str):
            raise TokenError("Token is not bound to a session")

    @property
    def session_id(self) -> str:
        return self.payload[SESSION_CLAIM]

    @property
    def issued_at(self) -> datetime:
        return datetime_from_epoch(self.payload["iat"])

    @cached_property
    def expires_at(self) -> datetime:
        return timezone.localtime(datetime_from_epoch(self.payload["exp"]))


class SessionAccessToken(_SessionTokenMixin, AccessToken):
    """The access token; `request.auth` of a JWT-authenticated request."""

    # What /auth/validate reports; API keys say "api_key".
    scheme = "jwt"


class SessionRefreshToken(_SessionTokenMixin, RefreshToken):
    """The refresh token; exchanged once for a new pair (rotation)."""

    access_token_class = SessionAccessToken


class EmailVerificationTokenGenerator:
    """The token of an email verification link, for the account's current target address.

    Not Django's PasswordResetTokenGenerator: that one's lifetime is PASSWORD_RESET_TIMEOUT and its hash
    covers the password, which must not matter here. A TimestampSigner (django.core.signing) with a salt of
    its own signs a fingerprint of the account's address state (the email, the pending email, whether it is
    verified), so: no other signature of the project passes for one; it expires after
    EMAIL_VERIFICATION_TIMEOUT; and it stops working once used, or once the address it was sent for is no
    longer the one the account has or asks for.
    """

    salt = "gatehouse.accounts.email-verification"
    sep = "."  # not the default ":", which a URL's query would percent-encode

    def _signer(self) -> signing.TimestampSigner:
        return signing.TimestampSigner(salt=self.salt, sep=self.sep)

    def _fingerprint(self, user) -> str:
        state = f"{user.pk}\0{user.email.lower()}\0{user.pending_email.lower()}\0{int(user.email_verified)}"
        return hashlib.sha256(state.encode()).hexdigest()[:32]

    def make_token(self, user) -> str:
        return self._signer().sign(self._fingerprint(user))

    def check_token(self, user, token: str) -> bool:
        try:
            signed = self._signer().unsign(token, max_age=settings.EMAIL_VERIFICATION_TIMEOUT)
        except signing.BadSignature:  # SignatureExpired is one too
            return False
        return constant_time_compare(signed, self._fingerprint(user))


email_verification_token = EmailVerificationTokenGenerator()
