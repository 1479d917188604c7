"""Accounts: every write and rule about users, login sessions and their tokens."""

import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate, password_validation
from django.contrib.auth.models import update_last_login
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError

from accounts.models import AuthSession, RefreshTokenRecord, SecurityEvent, SecurityEventType, User
from accounts.tokens import SESSION_CLAIM, SessionAccessToken, SessionRefreshToken
from config.errors import AuthenticationError, Conflict
from config.requests import current_client

logger = logging.getLogger(__name__)

LOGIN_FAILED = "Incorrect username or password"
TOKEN_INVALID = "Token is invalid, expired or revoked"
REAUTH_FAILED = "Incorrect password"
# Names that a security event's detail may never carry: the event log is read by its owner and by admins.
SECRET_FIELD_WORDS = ("password", "token", "secret", "key", "code", "otp")


# SECURITY EVENTS
# ------------------------------------------------------------------------------


def _safe_detail(detail: dict | None) -> dict:
    """The detail with plain values only (str, number, bool, None; strings cut to 200), and no field named
    like a secret: a caller's mistake must not put a credential in front of admins."""
    safe = {}
    for name, value in (detail or {}).items():
        if any(word in name.lower() for word in SECRET_FIELD_WORDS):
            raise ValueError(f"a security event's detail may not carry {name!r}")
        if isinstance(value, str):
            value = value[:200]
        elif not isinstance(value, int | float | bool | type(None)):
            value = str(value)[:200]
        safe[name] = value
    return safe


def security_event_record(*, user, type: str, detail: dict | None = None) -> SecurityEvent:  # noqa: A002
    """Record what happened to ``user``'s account (one of SecurityEventType), with the address and
    User-Agent of the request being served, if any. Every app records its events through this."""
    if type not in SecurityEventType.values:
        raise ValueError(f"unknown security event type {type!r}")
    ip_address, user_agent = current_client()
    return SecurityEvent.objects.create(
        user_id=user.pk, type=type, ip_address=ip_address, user_agent=user_agent, detail=_safe_detail(detail)
    )


# USERS
# ------------------------------------------------------------------------------


def _ensure_identity_free(*, username: str | None = None, email: str | None = None, exclude_id: int | None = None):
    others = User.objects.exclude(pk=exclude_id) if exclude_id else User.objects.all()
    if username and others.filter(username__iexact=username).exists():
        raise Conflict("Username already registered")
    if email and others.filter(email__iexact=email).exists():
        raise Conflict("Email already registered")


def _validate_password(*, password: str, user: User) -> None:
    if len(password) > settings.PASSWORD_MAX_LENGTH:
        raise ValidationError(
            {"password": [f"Ensure this field has no more than {settings.PASSWORD_MAX_LENGTH} characters."]}
        )
    try:
        password_validation.validate_password(password, user=user)
    except ValidationError as error:
        raise ValidationError({"password": error.messages}) from None


def user_create(*, username: str, email: str = "", password: str, name: str = "", is_staff: bool = False) -> User:
    """Create an account after the password validators pass; 409 (Conflict) when the username or email is taken."""
    email = User.objects.normalize_email(email)
    candidate = User(username=username, email=email, name=name)
    _validate_password(password=password, user=candidate)
    _ensure_identity_free(username=username, email=email)
    try:
        with transaction.atomic():
            if is_staff:
                return User.objects.create_superuser(username=username, email=email, password=password, name=name)
            return User.objects.create_user(username=username, email=email, password=password, name=name)
    except IntegrityError:
        # Lost a race with a concurrent registration of the same name: the constraint decides.
        raise Conflict("Username or email already registered") from None


@transaction.atomic
def user_update(*, user: User, name=None, email=None, is_active=None, is_staff=None) -> User:
    """Change profile or admin fields; deactivation revokes every session at once."""
    fields = []
    if email is not None and email != user.email:
        email = User.objects.normalize_email(email)
        _ensure_identity_free(email=email, exclude_id=user.pk)
        user.email = email
        fields.append("email")
    if name is not None:
        user.name = name
        fields.append("name")
    if is_staff is not None:
        user.is_staff = is_staff
        fields.append("is_staff")
    if is_active is not None and is_active != user.is_active:
        user.is_active = is_active
        fields.append("is_active")
    if fields:
        try:
            with transaction.atomic():
                user.save(update_fields=fields)
        except IntegrityError:
            raise Conflict("Email already registered") from None
    if is_active is False:
        auth_sessions_revoke_all(user=user, reason="deactivated")
    else:
        _forget_cached_sessions(user=user)
    return user


def user_deactivate(*, user: User) -> User:
    """Deactivate an account: its tokens, sessions and API keys stop working at once."""
    return user_update(user=user, is_active=False)


@transaction.atomic
def user_password_change(*, user: User, current_password: str, new_password: str, keep_session_id=None) -> None:
    """Change the password; every other session of the user is revoked, the calling one stays."""
    if not user.check_password(current_password):
        raise ValidationError({"current_password": ["Current password is incorrect."]})
    _validate_password(password=new_password, user=user)
    user.set_password(new_password)
    user.save(update_fields=["password"])
    auth_sessions_revoke_all(user=user, reason="password_changed", except_session_id=keep_session_id)
    security_event_record(user=user, type=SecurityEventType.PASSWORD_CHANGE)


# LOGIN SESSIONS AND TOKENS
# ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenPair:
    access: SessionAccessToken
    refresh: SessionRefreshToken

    @property
    def expires_in(self) -> int:
        return int(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds())


def _refresh_expiry():
    return timezone.now() + settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"]


def _issue_tokens(*, session: AuthSession) -> TokenPair:
    """A new access/refresh pair for the session; the refresh token is recorded by jti only."""
    refresh = SessionRefreshToken()
    refresh["user_id"] = str(session.user_id)
    refresh[SESSION_CLAIM] = str(session.pk)
    RefreshTokenRecord.objects.create(session=session, jti=refresh["jti"], expires_at=session.expires_at)
    return TokenPair(access=refresh.access_token, refresh=refresh)


def auth_login(
    *, username: str, password: str, user_agent: str = "", ip_address: str | None = None, request=None
) -> TokenPair:
    """Check the credentials and open a session. One generic error whatever went wrong."""
    if len(password) > settings.PASSWORD_MAX_LENGTH:
        raise AuthenticationError(LOGIN_FAILED)
    user = authenticate(request, username=username, password=password)
    if user is None:
        raise AuthenticationError(LOGIN_FAILED)
    with transaction.atomic():
        now = timezone.now()
        session = AuthSession.objects.create(
            user=user,
            created_at=now,
            last_seen=now,
            expires_at=_refresh_expiry(),
            user_agent=user_agent[:512],
            ip_address=ip_address,
        )
        update_last_login(None, user)
        security_event_record(user=user, type=SecurityEventType.LOGIN, detail={"session": str(session.pk)})
        return _issue_tokens(session=session)


def auth_refresh(*, refresh_token: str) -> TokenPair:
    """Exchange a refresh token for a new pair. Each token works once; a second use revokes its session."""
    try:
        presented = SessionRefreshToken(refresh_token)
    except TokenError:
        raise AuthenticationError(TOKEN_INVALID) from None
    session = AuthSession.objects.select_related("user").filter(pk=presented.session_id).first()
    if session is None or not _session_is_valid(session=session, token=presented):
        raise AuthenticationError(TOKEN_INVALID)
    # The conditional UPDATE is the whole race guard: of two concurrent exchanges of the
    # same token, exactly one sees used_at still NULL.
    consumed = RefreshTokenRecord.objects.filter(
        jti=presented["jti"], session_id=session.pk, used_at__isnull=True
    ).update(used_at=timezone.now())
    if not consumed:
        if RefreshTokenRecord.objects.filter(jti=presented["jti"]).exists():
            logger.warning("refresh token reuse on session %s: session revoked", session.pk)
            auth_session_revoke(session=session, reason="refresh_token_reuse")
            security_event_record(
                user=session.user, type=SecurityEventType.REFRESH_REUSE, detail={"session": str(session.pk)}
            )
        raise AuthenticationError(TOKEN_INVALID)
    with transaction.atomic():
        # Each refresh extends the session: it lives as long as its newest refresh token.
        session.expires_at = _refresh_expiry()
        AuthSession.objects.filter(pk=session.pk).update(expires_at=session.expires_at)
        return _issue_tokens(session=session)


def auth_session_revoke(*, session: AuthSession, reason: str = "revoked") -> AuthSession:
    """End one session: its access and refresh tokens fail from the next request on. Idempotent."""
    if session.revoked_at is None:
        session.revoked_at = timezone.now()
        session.revoked_reason = reason
        AuthSession.objects.filter(pk=session.pk, revoked_at__isnull=True).update(
            revoked_at=session.revoked_at, revoked_reason=reason
        )
    _forget_cached(session_ids=[session.pk])
    return session


def auth_sessions_revoke_all(*, user: User, reason: str, except_session_id=None) -> int:
    """End every active session of the user (but one, if named). Returns how many were ended."""
    active = AuthSession.objects.filter(user=user, revoked_at__isnull=True)
    if except_session_id is not None:
        active = active.exclude(pk=except_session_id)
    ids = list(active.values_list("pk", flat=True))
    revoked = AuthSession.objects.filter(pk__in=ids, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_reason=reason
    )
    _forget_cached_sessions(user=user)
    return revoked


def auth_logout(*, user: User, session_id, refresh_token: str | None = None) -> None:
    """End the calling session (and the refresh token's session too, if it is another of the user's)."""
    session_ids = {str(session_id)}
    if refresh_token:
        # An unusable refresh token needs no revoking.
        with contextlib.suppress(TokenError):
            session_ids.add(SessionRefreshToken(refresh_token).session_id)
    for session in AuthSession.objects.filter(user=user, pk__in=session_ids):
        auth_session_revoke(session=session, reason="logout")
    security_event_record(user=user, type=SecurityEventType.LOGOUT, detail={"session": str(session_id)})


@transaction.atomic
def auth_logout_all(*, user: User) -> None:
    """Reject every token of the user issued so far: revoke all sessions and move the cut-off."""
    User.objects.filter(pk=user.pk).update(tokens_valid_after=timezone.now())
    auth_sessions_revoke_all(user=user, reason="logout_all")
    security_event_record(user=user, type=SecurityEventType.LOGOUT_ALL)


def auth_session_revoke_by_owner(*, session: AuthSession) -> AuthSession:
    """The owner ends one of their sessions (DELETE /auth/sessions/{id}); recorded as an event."""
    auth_session_revoke(session=session, reason="deleted_by_user")
    security_event_record(
        user=session.user, type=SecurityEventType.SESSION_REVOKED, detail={"session": str(session.pk)}
    )
    return session


# RE-AUTHENTICATION: a recent proof of identity for sensitive actions
# ------------------------------------------------------------------------------


def auth_recently_authenticated(*, session: AuthSession) -> bool:
    """Whether the session's user proved who they are within REAUTH_WINDOW_MINUTES (login or reauth)."""
    window = timedelta(minutes=settings.REAUTH_WINDOW_MINUTES)
    return session.authenticated_at >= timezone.now() - window


def auth_reauth(*, user: User, session_id, password: str) -> None:
    """Prove who you are again, in the calling session: sensitive actions are allowed for the next
    REAUTH_WINDOW_MINUTES. A wrong password is a 401 (and changes nothing)."""
    if len(password) > settings.PASSWORD_MAX_LENGTH or not user.check_password(password):
        raise AuthenticationError(REAUTH_FAILED)
    AuthSession.objects.filter(pk=session_id, user=user).update(authenticated_at=timezone.now())
    _forget_cached(session_ids=[session_id])


@dataclass(frozen=True)
class PruneReport:
    sessions: int
    refresh_tokens: int


@transaction.atomic
def auth_records_prune(*, retention_days: int = 30) -> PruneReport:
    """Delete what can no longer authenticate: refresh-token records past their expiry (a
    replayed expired token fails on its signature, so reuse detection no longer needs them),
    and sessions that ended more than `retention_days` ago (kept that long for audit)."""
    now = timezone.now()
    _, by_model = RefreshTokenRecord.objects.filter(expires_at__lt=now).delete()
    cutoff = now - timedelta(days=retention_days)
    ended = AuthSession.objects.filter(Q(expires_at__lt=cutoff) | Q(revoked_at__lt=cutoff))
    _, cascaded = ended.delete()
    return PruneReport(
        sessions=cascaded.get(AuthSession._meta.label, 0),
        refresh_tokens=by_model.get(RefreshTokenRecord._meta.label, 0)
        + cascaded.get(RefreshTokenRecord._meta.label, 0),
    )


# AUTHENTICATING A REQUEST
# ------------------------------------------------------------------------------


def _session_cache_key(session_id) -> str:
    return f"authsession:{session_id}"


def _forget_cached(*, session_ids) -> None:
    """Drop cached sessions now, and again once the change is committed: a concurrent
    request may cache the pre-change row in between."""
    keys = [_session_cache_key(pk) for pk in session_ids]
    if keys and settings.AUTH_SESSION_CACHE_SECONDS:
        cache.delete_many(keys)
        transaction.on_commit(lambda: cache.delete_many(keys))


def _forget_cached_sessions(*, user: User) -> None:
    ttl = settings.AUTH_SESSION_CACHE_SECONDS
    if ttl:
        # Only sessions alive within the cache lifetime can have an entry.
        recent = timezone.now() - timedelta(seconds=ttl)
        sessions = AuthSession.objects.filter(user=user, expires_at__gt=recent).filter(
            Q(revoked_at__isnull=True) | Q(revoked_at__gt=recent)
        )
        _forget_cached(session_ids=list(sessions.values_list("pk", flat=True)))


def _session_is_valid(*, session: AuthSession, token) -> bool:
    user = session.user
    return (
        session.revoked_at is None
        and session.expires_at > timezone.now()
        and user.is_active
        and str(user.pk) == str(token.get("user_id"))
        # iat has one-second resolution; the session revocation that comes with every
        # move of the cut-off covers tokens issued within that second.
        and token.issued_at >= user.tokens_valid_after.replace(microsecond=0)
    )


def _load_session(session_id: str) -> AuthSession | None:
    """The session joined to its user: one indexed query, or none when cached."""
    key = _session_cache_key(session_id)
    timeout = settings.AUTH_SESSION_CACHE_SECONDS
    session = cache.get(key) if timeout else None
    if session is None:
        try:
            session = AuthSession.objects.select_related("user").filter(pk=session_id).first()
        except ValidationError:  # not a UUID
            return None
        if session is not None and timeout:
            cache.set(key, session, timeout)
    return session


def _touch_session(session: AuthSession) -> None:
    """Write last_seen at most once a minute, with a conditional UPDATE (no read-modify-write)."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.AUTH_LAST_SEEN_RESOLUTION_SECONDS)
    if session.last_seen > cutoff:
        return
    AuthSession.objects.filter(pk=session.pk, last_seen__lt=cutoff).update(last_seen=now)
    session.last_seen = now
    if settings.AUTH_SESSION_CACHE_SECONDS:
        cache.set(_session_cache_key(session.pk), session, settings.AUTH_SESSION_CACHE_SECONDS)


def access_token_authenticate(*, raw_token: str) -> tuple[User, SessionAccessToken]:
    """Verify an access token and its session. Raises AuthenticationError when either is not valid."""
    try:
        token = SessionAccessToken(raw_token)
    except TokenError:
        raise AuthenticationError(TOKEN_INVALID) from None
    session = _load_session(token.session_id)
    if session is None or not _session_is_valid(session=session, token=token):
        raise AuthenticationError(TOKEN_INVALID)
    _touch_session(session)
    token.auth_session = session  # for permissions that look at the session (RecentAuthentication)
    return session.user, token
