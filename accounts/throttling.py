"""Rate limits for the credential endpoints, per client address, username, email asked for, or account.

A view names its `throttle_scope` ("login", "register", "refresh", "password_reset", "verify_resend",
"password_change", "email_change"); the rates are the settings `<scope>_address`, `<scope>_username`,
`<scope>_email` and `<scope>_user` in DEFAULT_THROTTLE_RATES (a scope without one of them is not limited that
way). Two-factor codes have one budget per account, `mfa_account` (THROTTLE_MFA_RATE), whichever endpoint they
are sent to. 429 responses carry Retry-After.

Password logins are counted twice more, by `LoginFailures` (from the authentication backend, so the API login,
the OAuth2 form and the admin's form alike): FAILED attempts per account from any address (`login_account`)
and per (account, address) (`login_account_address`). A success spends nothing, so nobody can keep an account
locked out by trying it; when the account-wide budget is spent, an address the owner has logged in from before
is still let in (the per-(account, address) budget is what stops a guesser there). The account is the one the
identifier resolves to, so `ALICE`, a fullwidth `ａｌｉｃｅ` and alice's email are one bucket; an identifier
that resolves to nobody is counted under its normalised form (NFKC, casefold), exactly like an account, so
that a 429 does not tell which usernames exist. The admin's form also counts against the per-address budget
through `login_attempt_wait`.
"""

import hashlib
import time
import unicodedata

from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from accounts import selectors
from config.errors import QuotaExceeded
from config.fallback_cache import request_cache
from config.requests import client_ip

LOGIN_THROTTLED = "Too many failed login attempts; try again later."


def identifier_normalised(identifier: str) -> str:
    """How two login identifiers compare for counting: NFKC (compatibility forms such as fullwidth letters
    fold) then casefold, stripped. For counting and matching only; stored usernames keep their spelling."""
    return unicodedata.normalize("NFKC", identifier).casefold().strip()


def _hashed(value: str) -> str:
    # Hashed: an identifier may hold characters some cache backends reject in keys.
    return hashlib.sha256(value.encode()).hexdigest()


def _submitted(request, name: str):
    """A field of the body: DRF's parsed `data`, or the form of a plain Django request (the admin login)."""
    data = getattr(request, "data", None)
    if data is None:
        data = request.POST
    return data.get(name) if hasattr(data, "get") else None


class _ScopedThrottle(SimpleRateThrottle):
    # Redis down: counted in each process's memory, neither a 500 nor no limit (config/fallback_cache.py).
    cache = request_cache
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
        return self.cache_format % {"scope": self.scope, "ident": _hashed(identifier_normalised(username))}


class EmailRateThrottle(_ScopedThrottle):
    """Limits requests about one email address (a password reset asked for it), from any number of addresses."""

    kind = "email"

    def get_cache_key(self, request, view):
        data = request.data if hasattr(request.data, "get") else {}
        email = data.get("email")
        if not isinstance(email, str) or not email:
            return None
        ident = _hashed(identifier_normalised(email))
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


class _FailureBudget:
    """A sliding window of failures (DRF's throttle history, in the same cache) that only `add` spends."""

    def __init__(self, *, scope: str, ident: str):
        self.key = f"throttle_{scope}_{ident}"
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(scope)
        # DRF's own reading of "<count>/<s|m|h|d...>" (parse_rate uses nothing of the instance).
        self.limit, self.duration = SimpleRateThrottle.parse_rate(None, rate) if rate else (None, None)

    def _history(self, now: float) -> list[float]:
        return [at for at in request_cache.get(self.key, []) if at > now - self.duration]

    def wait(self) -> float | None:
        """None while failures are below the limit, else the seconds until the oldest one leaves the window."""
        if self.limit is None:
            return None
        now = time.time()
        history = self._history(now)
        if len(history) < self.limit:
            return None
        return max(history[-self.limit] + self.duration - now, 1.0)

    def add(self) -> None:
        if self.limit is None:
            return
        now = time.time()
        request_cache.set(self.key, [*self._history(now), now], self.duration)


class LoginFailures:
    """The failed-password budgets of one login attempt: the account's (from anywhere) and the account's at
    the client's address. `user` is whom the identifier resolved to, None for nobody."""

    def __init__(self, *, request, identifier: str, user):
        self.user = user
        self.address = client_ip(request) if request is not None else None
        ident = self.address or (BaseThrottle().get_ident(request) if request is not None else "")
        who = f"user:{user.pk}" if user is not None else f"name:{_hashed(identifier_normalised(identifier))}"
        self.account = _FailureBudget(scope="login_account", ident=_hashed(who))
        self.at_address = _FailureBudget(scope="login_account_address", ident=_hashed(f"{who}|{ident}"))

    def check(self) -> None:
        """Raise QuotaExceeded (429, Retry-After) if this attempt may not even be tried."""
        wait = self.at_address.wait()
        if wait is None:
            wait = self.account.wait()
            if wait is not None and self._from_usual_address():
                wait = None
        if wait is not None:
            raise QuotaExceeded(LOGIN_THROTTLED, retry_after=wait)

    def failed(self) -> None:
        self.account.add()
        self.at_address.add()

    def _from_usual_address(self) -> bool:
        # Asked only once the account-wide budget is spent: has the owner logged in from here before?
        if self.user is None or self.address is None:
            return False
        return selectors.user_has_logged_in_from(user=self.user, address=self.address)


class _LoginScope:
    throttle_scope = "login"


def login_attempt_wait(request) -> float | None:
    """For a password login outside DRF (the admin's form): None if the API login's per-address budget
    allows this attempt (and counts it), else the seconds to wait. The failure budgets are the backend's."""
    throttle = AddressRateThrottle()
    if not throttle.allow_request(request, _LoginScope):
        return throttle.wait() or 1.0
    return None


class _OneAccountMFAThrottle(MFAAccountRateThrottle):
    """The `mfa_account` budget of one known account, for a form that takes the code with the password."""

    def __init__(self, *, user_id):
        super().__init__()
        self.user_id = user_id

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.user_id}


def mfa_code_attempt_wait(*, user) -> float | None:
    """For a code given in a login form (the admin's, the browsable API's): None if the account's two-factor
    budget (`mfa_account`, the one POST /auth/login/mfa spends) allows this attempt (and counts it), else the
    seconds to wait. Without it, whoever knows the password could try codes at the per-address login rate."""
    throttle = _OneAccountMFAThrottle(user_id=user.pk)
    if not throttle.allow_request(None, None):
        return throttle.wait() or 1.0
    return None
