"""Rate limits for the credential endpoints, per client address, username, email asked for, or account.

A view names its `throttle_scope` ("login", "register", "refresh", "password_reset", "verify_resend"); the
rates are the settings `<scope>_address`, `<scope>_username`, `<scope>_email` and `<scope>_user` in
DEFAULT_THROTTLE_RATES (a scope without one of them is not limited that way). Two-factor codes have one
budget per account, `mfa_account` (THROTTLE_MFA_RATE), whichever endpoint they are sent to. 429 responses
carry Retry-After. The admin's login form (accounts/admin.py) counts against the same "login" budgets, with
the same cache keys, through `login_attempt_wait`.
"""

import hashlib

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from accounts import selectors


def _submitted(request, name: str):
    """A field of the body: DRF's parsed `data`, or the form of a plain Django request (the admin login)."""
    data = getattr(request, "data", None)
    if data is None:
        data = request.POST
    return data.get(name) if hasattr(data, "get") else None


class _ScopedThrottle(SimpleRateThrottle):
    kind = ""

    def scope_for(self, view) -> str:
        return f"{getattr(view, 'throttle_scope', '')}_{self.kind}"

    def allow_request(self, request, view):
        self.scope = self.scope_for(view)
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
        username = _submitted(request, "username") or _submitted(request, "username_or_email")
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


class MFAAccountRateThrottle(_ScopedThrottle):
    """Limits two-factor codes tried against one account: the caller's, or the one whose mfa_token is sent.

    Only requests that carry a `code` count (a reauth of a user without two-factor does not)."""

    def scope_for(self, view) -> str:
        return "mfa_account"  # one budget for every endpoint that takes a code, whatever the view's scope

    def get_cache_key(self, request, view):
        if not _submitted(request, "code"):
            return None
        mfa_token = _submitted(request, "mfa_token")
        if isinstance(mfa_token, str) and mfa_token:
            user_id = selectors.mfa_challenge_user_id(mfa_token=mfa_token[:200])
        else:
            user = getattr(request, "user", None)
            user_id = user.pk if user is not None and user.is_authenticated else None
        if user_id is None:
            return None  # nobody's: the endpoint answers 401 without looking at the code
        return self.cache_format % {"scope": self.scope, "ident": user_id}


class _LoginScope:
    throttle_scope = "login"


def login_attempt_wait(request) -> float | None:
    """For a password login outside DRF (the admin's form): None if the API login's per-address and
    per-username budgets allow this attempt (and count it), else the seconds to wait."""
    for throttle in (AddressRateThrottle(), UsernameRateThrottle()):
        if not throttle.allow_request(request, _LoginScope):
            return throttle.wait() or 1.0
    return None
