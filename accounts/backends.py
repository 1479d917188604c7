"""Authentication backend: log in with a username or an email address, regardless of case."""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db.models import Case, Q, Value, When


class UsernameOrEmailBackend(ModelBackend):
    """ModelBackend that accepts the email in place of the username.

    Unknown users still run the password hasher once (ModelBackend's own defence), so the
    response time does not tell which usernames exist.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None or password is None:
            return None
        User = get_user_model()
        lookup = Q(username__iexact=username)
        if "@" in username:
            lookup |= Q(email__iexact=username)
        # A username match wins over someone else's email that happens to read the same; then the account that
        # verified the address (under ACCOUNT_EMAIL_VERIFICATION=mandatory unverified accounts may share it).
        username_first = Case(When(username__iexact=username, then=Value(0)), default=Value(1))
        user = User._default_manager.filter(lookup).order_by(username_first, "-email_verified", "pk").first()
        if user is None:
            User().set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
