"""Permission classes of the accounts app."""

from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission, IsAuthenticated

from accounts import services
from accounts.tokens import SessionAccessToken
from config.permissions import APIKeyScope

REAUTH_REQUIRED = (
    "This action needs a recent authentication: log in again, or POST /api/v1/auth/reauth with your password."
)


class ReauthRequired(PermissionDenied):
    """403 {"detail": ..., "code": "reauth_required"}: a client can tell it from other 403s and ask for the password."""

    default_code = "reauth_required"

    def __init__(self):
        super().__init__(detail={"detail": REAUTH_REQUIRED, "code": self.default_code})


class IsAdmin(BasePermission):
    """Only admins (is_staff) may call the endpoint."""

    message = "Admin privileges required"

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class HasJWT(BasePermission):
    """The request must carry a JWT from a password login: API keys and cookies cannot manage credentials."""

    message = "This action needs a JWT access token from a password login."

    def has_permission(self, request, view):
        return isinstance(request.auth, SessionAccessToken)


class HasCredential(BasePermission):
    """The request carries a credential (a JWT or an API key), not just a browser session cookie."""

    message = "This endpoint validates a JWT or an API key."

    def has_permission(self, request, view):
        return getattr(request.auth, "scheme", None) is not None


class RecentAuthentication(BasePermission):
    """A JWT whose session proved its user within REAUTH_WINDOW_MINUTES (a password login, or
    POST /auth/reauth): for creating API keys and provider keys and other sensitive actions.
    Goes after HasJWT, which refuses API keys and cookies with its own message."""

    def has_permission(self, request, view):
        session = getattr(request.auth, "auth_session", None)
        if session is None:
            return False
        if not services.auth_recently_authenticated(session=session):
            raise ReauthRequired()
        return True


class CredentialPermissionsMixin:
    """For a viewset of the caller's credentials (API keys, provider keys): listing needs any sign-in,
    deleting a JWT, and creating one a JWT with a recent authentication (a key cannot mint keys, so a
    scoped key cannot mint a wider one). Reading goes through APIKeyScope: the viewset declares the
    scope of its `list` (and `retrieve`) in `required_scopes`."""

    def get_permissions(self):
        if self.action == "create":
            return [IsAuthenticated(), HasJWT(), RecentAuthentication()]
        if self.action == "destroy":
            return [IsAuthenticated(), HasJWT()]
        return [IsAuthenticated(), APIKeyScope()]
