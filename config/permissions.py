"""The API key scope check: the one permission class every API-key-reachable view goes through."""

from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

from config import scopes

# What request.auth.scheme says for a request authenticated by an API key (apikeys.models.APIKey.scheme);
# config sits below the apps, so it names the scheme rather than importing the model.
API_KEY_SCHEME = "api_key"


class InsufficientScope(PermissionDenied):
    """403 {"detail": "This API key lacks the scope posts:write", "code": "insufficient_scope"}."""

    default_code = "insufficient_scope"

    def __init__(self, missing: list[str]):
        if len(missing) == 1:
            detail = f"This API key lacks the scope {missing[0]}"
        else:
            detail = f"This API key lacks the scopes {', '.join(missing)}: this endpoint needs a key with every scope"
        super().__init__(detail={"detail": detail, "code": self.default_code})


class APIKeyScope(BasePermission):
    """A request authenticated by an API key needs the scope the view declares for the operation
    (`required_scopes`, see config.scopes). JWTs and session cookies are not scoped. Costs no query:
    the key, with its `scopes`, is already on request.auth."""

    def has_permission(self, request, view):
        key = request.auth
        if getattr(key, "scheme", None) != API_KEY_SCHEME:
            return True
        missing = scopes.missing_scopes(held=key.scopes, needed=scopes.declared_scope(view, request.method))
        if missing:
            raise InsufficientScope(missing)
        return True
