"""Rate limits for the credential endpoints, per client address, username, email asked for, or account.

A view names its `throttle_scope` ("login", "register", "refresh", "password_reset", "verify_resend"); the
rates are the settings `<scope>_address`, `<scope>_username`, `<scope>_email` and `<scope>_user` in
DEFAULT_THROTTLE_RATES (a scope without one of them is not limited that way). 429 responses carry Retry-After.
"""

import hashlib

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class _ScopedThrottle(SimpleRateThrottle):
    kind = ""

    def allow_request(self, request, view):
        self.scope = f"{getattr(view, 'throttle_scope', '')}_{self.kind}"
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_rate(self):
        # Read on every request, not once at import, so rates follow settings overrides.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class AddressRateThrottle(_ScopedThrottle):
    """Limits attempts from one client address."""

    kind = "address"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class UsernameRateThrottle(_ScopedThrottle):
    """Limits attempts against one username, from any number of addresses."""

    kind = "username"

    def get_cache_key(self, request, view):
        data = request.data if hasattr(request.data, "get") else {}
        username = data.get("username") or data.get("username_or_email")
        if not isinstance(username, str) or not username:
            return None
        # Hashed: a username may hold characters some cache backends reject in keys.
        ident = hashlib.sha256(username.strip().lower().encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}


class EmailRateThrottle(_ScopedThrottle):
    """Limits requests about one email address (a password reset asked for it), from any number of addresses."""

    kind = "email"

    def get_cache_key(self, request, view):
        data = request.data if hasattr(request.data, "get") else {}
        email = data.get("email")
        if not isinstance(email, str) or not email:
            return None
        ident = hashlib.sha256(email.strip().lower().encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}


class AccountRateThrottle(_ScopedThrottle):
    """Limits requests of one signed-in account (resending the verification mail)."""

    kind = "user"

    def get_cache_key(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}
