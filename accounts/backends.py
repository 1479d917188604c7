"""Authentication backend: log in with a username or an email address, regardless of case."""

import unicodedata

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db.models import Case, Q, Value, When

from accounts.models import SecurityEventType
from accounts.services import security_event_record
from accounts.throttling import LoginFailures


class UsernameOrEmailBackend(ModelBackend):
    """ModelBackend that accepts the email in place of the username, and counts failed passwords.

    The identifier is NFKC-normalised before the lookup (as Django stores usernames), then compared regardless
    of case by the database. Before the password is checked, the failure budgets of `LoginFailures` may refuse
    the attempt (QuotaExceeded, a 429); a wrong password spends them and, for an account that exists, records a
    `login_failed` event. Unknown users still run the password hasher once (ModelBackend's own defence), so the
    response time does not tell which usernames exist.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None or password is None:
            return None
        username = unicodedata.normalize("NFKC", username).strip()
        user = self._lookup(username)
        failures = LoginFailures(request=request, identifier=username, user=user)
        failures.check()
        if user is None:
            User = get_user_model()
            User().set_password(password)
        elif user.check_password(password) and self.user_can_authenticate(user):
            return user
        failures.failed()
        if user is not None:
            security_event_record(user=user, type=SecurityEventType.LOGIN_FAILED)
        return None

    def _lookup(self, username: str):
        User = get_user_model()
        lookup = Q(username__iexact=username)
        if "@" in username:
            lookup |= Q(email__iexact=username)
        # A username match wins over someone else's email that happens to read the same; then the account that
        # verified the address (under ACCOUNT_EMAIL_VERIFICATION=mandatory unverified accounts may share it).
        username_first = Case(When(username__iexact=username, then=Value(0)), default=Value(1))
        return User._default_manager.filter(lookup).order_by(username_first, "-email_verified", "pk").first()
