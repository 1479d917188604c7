"""Reads of the accounts app."""

from django.db.models import QuerySet
from django.utils import timezone

from accounts import mfa
from accounts.models import AuthSession, MFAChallenge, SecurityEvent, User


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


def user_has_logged_in_from(*, user: User, address: str) -> bool:
    """Whether a session of the user was opened from that address (live or not, until pruned)."""
    return AuthSession.objects.filter(user=user, ip_address=address).exists()


def security_event_list(*, user: User) -> QuerySet[SecurityEvent]:
    """The user's own security events, newest first (the (user, -created_at, -id) index)."""
    return SecurityEvent.objects.filter(user=user).order_by("-created_at", "-id")


def mfa_challenge_user_id(*, mfa_token: str) -> int | None:
    """Whose pending two-factor login this mfa_token is (live or not), for the per-account throttle; else None."""
    return (
        MFAChallenge.objects.filter(token_hash=mfa.mfa_token_hash(mfa_token)).values_list("user_id", flat=True).first()
    )
