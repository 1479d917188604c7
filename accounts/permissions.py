"""Permission classes of the accounts app."""

from rest_framework.permissions import BasePermission

from accounts.tokens import SessionAccessToken


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
