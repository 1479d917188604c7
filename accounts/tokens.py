"""SimpleJWT tokens bound to a login session (`sid` claim). SimpleJWT signs and verifies; we add the checks it lacks.

And the tokens of the links the accounts mails carry: password reset (Django's own generator) and email
verification (below)."""

import hashlib
from datetime import datetime

from django.conf import settings
from django.core import signing
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.functional import cached_property
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

SESSION_CLAIM = "sid"


class _SessionTokenMixin:
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
