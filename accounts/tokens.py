"""SimpleJWT tokens bound to a login session (`sid` claim). SimpleJWT signs and verifies; we add the checks it lacks."""

from datetime import datetime

from django.utils import timezone
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
