"""The password login form of Django's own login pages: the browsable API's (/api-auth/login/) and the admin's.

Both take the password and, for an account with two-factor on, its code at once; both count against the
budgets of POST /auth/login (accounts/throttling.py), so a cookie login is no way around the API's rules.
"""

import math

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from accounts import services
from accounts.throttling import login_attempt_wait, mfa_code_attempt_wait
from config.errors import QuotaExceeded


class LoginForm(AuthenticationForm):
    """Username (or email), password and, when two-factor is on, a TOTP or recovery code.

    Throttled like POST /auth/login: the per-address budget before anything is checked, the backend's failure
    budgets per account, and the account's two-factor budget for the code. A wrong password, a wrong or
    missing code and an inactive account all get the same message. Under ACCOUNT_EMAIL_VERIFICATION=mandatory
    an unverified address is refused as the API refuses it (after the password, with a new link sent)."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": (
            "Please enter a correct %(username)s and password, and your two-factor code if two-factor "
            "authentication is on. Note that both fields may be case-sensitive."
        ),
        "throttled": "Too many login attempts. Try again in %(seconds)d seconds.",
    }
    # The admin's form turns this off: operators create staff at the command line, without a verified address.
    requires_verified_email = True
    # The `during` of the mfa_failed event a wrong code records.
    login_during = "api_auth_login"

    code = forms.CharField(
        label="Two-factor code",
        required=False,
        max_length=64,
        help_text="Only if two-factor authentication is on: the app's 6 digits, or a recovery code.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def clean(self):
        # Counted before the password is checked, so that guesses at it are limited too.
        wait = login_attempt_wait(self.request) if self.request is not None else None
        if wait is None:
            try:
                return super().clean()
            except QuotaExceeded as refused:  # the backend's failure budgets, or the two-factor budget
                wait = refused.retry_after
        raise ValidationError(self.error_messages["throttled"], code="throttled", params={"seconds": math.ceil(wait)})

    def confirm_login_allowed(self, user):
        # Django's own first: an inactive account, and (the admin's) a non-staff one, before any code is spent.
        super().confirm_login_allowed(user)
        if self.requires_verified_email:
            try:
                services.auth_email_verified_check(user=user, request=self.request)
            except services.EmailUnverified:
                raise ValidationError(services.EMAIL_UNVERIFIED, code="email_unverified") from None
        self._confirm_second_factor(user)

    def _confirm_second_factor(self, user):
        code = self.cleaned_data.get("code") or ""
        if user.mfa_enabled and code:
            wait = mfa_code_attempt_wait(user=user)
            if wait is not None:
                raise QuotaExceeded(retry_after=math.ceil(wait))
        if not services.mfa_login_code_check(user=user, code=code, during=self.login_during):
            raise self.get_invalid_login_error()
