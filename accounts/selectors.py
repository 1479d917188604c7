"""Reads of the accounts app."""

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import AuthSession, SecurityEvent, User


def auth_session_active_list(*, user: User) -> QuerySet[AuthSession]:
    """The user's sessions that can still authenticate, newest first."""
    return AuthSession.objects.filter(user=user, revoked_at__isnull=True, expires_at__gt=timezone.now()).order_by(
        "-created_at"
    )


def user_list() -> QuerySet[User]:
    return User.objects.order_by("id")


def user_by_username(*, username: str) -> User | None:
    """The user of that username, compared regardless of case (as at login), or None."""
    return User.objects.filter(username__iexact=username).first()


def security_event_list(*, user: User) -> QuerySet[SecurityEvent]:
    """The user's own security events, newest first (the (user, -created_at, -id) index)."""
    return SecurityEvent.objects.filter(user=user).order_by("-created_at", "-id")
