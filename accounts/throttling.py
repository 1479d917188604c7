"""Rate limits for the credential endpoints, per client address and per username.

A view names its `throttle_scope` ("login", "register", "refresh"); the rates are the
settings `<scope>_address` and `<scope>_username` in DEFAULT_THROTTLE_RATES (a scope
without one of them is not limited that way). 429 responses carry Retry-After.
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
