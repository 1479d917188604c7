"""Accounts: every write and rule about users, login sessions and their tokens."""

import contextlib
import logging
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import authenticate, password_validation
from django.contrib.auth.models import update_last_login
from django.contrib.auth.tokens import default_token_generator as password_reset_token
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlencode, urlsafe_base64_decode, urlsafe_base64_encode
from rest_framework_simplejwt.exceptions import TokenError

import config
from accounts import mfa, signals
from accounts.models import (
    AuthSession,
    MFAChallenge,
    RecoveryCode,
    RefreshTokenRecord,
    SecurityEvent,
    SecurityEventType,
    TOTPDevice,
    User,
)
from accounts.tokens import SESSION_CLAIM, SessionAccessToken, SessionRefreshToken, email_verification_token
from config import crypto
from config.errors import AuthenticationError, Conflict, InvalidInput, ServiceError
from config.fallback_cache import request_cache
from config.local_cache import auth_cache, copy_user_of, user_tag
from config.requests import current_client

logger = logging.getLogger(__name__)

LOGIN_FAILED = "Incorrect username or password"
TOKEN_INVALID = "Token is invalid, expired or revoked"
REAUTH_FAILED = "Incorrect password"
RESET_REQUESTED = "If an account has this email address, a link to reset its password is on its way."
RESET_LINK_INVALID = "This password reset link is invalid, has already been used or has expired: ask for a new one."
VERIFY_LINK_INVALID = "This verification link is invalid, has already been used or has expired: ask for a new one."
EMAIL_TAKEN_BY_OTHER = "Another account verified this email address first: it is no longer yours to verify."
EMAIL_UNVERIFIED = "Verify your email address first: follow the link in the mail we sent you (a new one is on its way)."
# The worker's mail job, by its registered name: services never import accounts.jobs (jobs -> services).
MAIL_JOB = "accounts.send_account_mail"
VERIFY_ON_LOGIN_SECONDS = 5 * 60


class EmailUnverified(ServiceError):
    """403 {"detail": ..., "code": "email_unverified"}: ACCOUNT_EMAIL_VERIFICATION=mandatory, address unverified."""

    status_code = 403

    def __init__(self):
        super().__init__({"detail": EMAIL_UNVERIFIED, "code": "email_unverified"})


REAUTH_CODE_MISSING = "Two-factor authentication is on: send your TOTP or recovery code as `code` with the password."
MFA_CODE_WRONG = "Incorrect two-factor code"
MFA_TOKEN_INVALID = "The mfa_token is invalid, expired or used up: log in again with your password."
MFA_USE_LOGIN = (
    "Two-factor authentication is on for this account: log in with POST /api/v1/auth/login, "
    "then send the code with the mfa_token to POST /api/v1/auth/login/mfa."
)
# The contract's figures (API.md, "Accounts: recovery, verification, two-factor").
MFA_TOKEN_LIFETIME = timedelta(minutes=5)
MFA_TOKEN_MAX_ATTEMPTS = 5
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


def verification_is_mandatory() -> bool:
    return settings.ACCOUNT_EMAIL_VERIFICATION == "mandatory"


def _email_holders(email: str):
    """Accounts whose address `email` is in the sense of the verification mode: under optional any holder
    (an address is taken at registration, as it always was); under mandatory only a verified one, so an
    address registered by someone who cannot read its mail blocks nobody."""
    holders = User.objects.filter(email__iexact=email)
    return holders.filter(email_verified=True) if verification_is_mandatory() else holders


def _ensure_identity_free(*, username: str | None = None, email: str | None = None, exclude_id: int | None = None):
    others = User.objects.exclude(pk=exclude_id) if exclude_id else User.objects.all()
    if username and others.filter(username__iexact=username).exists():
        raise Conflict("Username already registered")
    if email and _email_holders(email).exclude(pk=exclude_id).exists():
        raise Conflict("Email already registered")


def _release_unverified_claims(*, email: str, exclude_id: int | None = None) -> None:
    """Under mandatory, drop the claims unverified accounts hold on `email` (accounts made before the switch
    from optional): from now on only verifying claims an address."""
    User.objects.filter(email__iexact=email, email_claimed=True, email_verified=False).exclude(pk=exclude_id).update(
        email_claimed=False
    )


def _validate_password(*, password: str, user: User, field: str = "password") -> None:
    if len(password) > settings.PASSWORD_MAX_LENGTH:
        limit = settings.PASSWORD_MAX_LENGTH
        raise ValidationError({field: [f"Ensure this field has no more than {limit} characters."]})
    try:
        password_validation.validate_password(password, user=user)
    except ValidationError as error:
        raise ValidationError({field: error.messages}) from None


def user_create(*, username: str, email: str = "", password: str, name: str = "", is_staff: bool = False) -> User:
    """Create an account after the password validators pass; 409 (Conflict) when the username or email is taken.

    Under ACCOUNT_EMAIL_VERIFICATION=mandatory the address is not claimed until verified (email_claimed)."""
    email = User.objects.normalize_email(email)
    candidate = User(username=username, email=email, name=name)
    _validate_password(password=password, user=candidate)
    _ensure_identity_free(username=username, email=email)
    extra = {"name": name, "email_claimed": not verification_is_mandatory()}
    try:
        with transaction.atomic():
            if email and verification_is_mandatory():
                _release_unverified_claims(email=email)
            if is_staff:
                return User.objects.create_superuser(username=username, email=email, password=password, **extra)
            return User.objects.create_user(username=username, email=email, password=password, **extra)
    except IntegrityError:
        # Lost a race with a concurrent registration of the same name: the constraint decides.
        raise Conflict("Username or email already registered") from None


def user_register(*, username: str, email: str, password: str, name: str = "", origin: str) -> User:
    """Self-service registration (POST /auth/register): create the account, then mail it a verification
    link (sent by the worker once the account is committed; `origin` is where links point without FRONTEND_URL)."""
    with transaction.atomic():
        user = user_create(username=username, email=email, password=password, name=name)
        email_verification_send(user=user, origin=origin)
    return user


@transaction.atomic
def user_update(*, user: User, name=None, email=None, is_active=None, is_staff=None) -> User:
    """Change profile or admin fields; deactivation revokes every session at once."""
    fields = []
    if email is not None and email != user.email:
        # An admin's change applies at once (it is the admin's word, not a proof): the address is unverified.
        email = User.objects.normalize_email(email)
        _ensure_identity_free(email=email, exclude_id=user.pk)
        if verification_is_mandatory():
            _release_unverified_claims(email=email, exclude_id=user.pk)
        user.email, user.pending_email = email, ""
        user.email_verified, user.email_claimed = False, not verification_is_mandatory()
        fields += ["email", "pending_email", "email_verified", "email_claimed"]
    if name is not None:
        user.name = name
        fields.append("name")
    if is_staff is not None:
        user.is_staff = is_staff
        fields.append("is_staff")
    if is_active is not None and is_active != user.is_active:
        user.is_active = is_active
        fields.append("is_active")
        if not is_active:
            # The cut-off moves too: it is in the hash of every cookie session (User.get_session_auth_hash),
            # which would otherwise come back to life if the account is reactivated.
            user.tokens_valid_after = timezone.now()
            fields.append("tokens_valid_after")
    if fields:
        try:
            with transaction.atomic():
                user.save(update_fields=fields)
        except IntegrityError:
            raise Conflict("Email already registered") from None
    if is_active is False:
        auth_sessions_revoke_all(user=user, reason="deactivated")
        signals.user_deactivated.send(sender=User, user=user, deactivated_at=timezone.now())
    else:
        _forget_cached_sessions(user_id=user.pk)
    return user


ROLE_CHANGE_SUPERUSER_ONLY = "Only a superuser may grant or remove admin rights."
SUPERUSER_CHANGE_SUPERUSER_ONLY = "Only a superuser may change a superuser's account."
# The API's names of the fields an admin may change (is_admin is is_staff on the row).
ADMIN_CHANGE_FIELDS = {"name": "name", "email": "email", "is_active": "is_active", "is_staff": "is_admin"}


def user_role_change_is_requested(*, user: User, is_staff: bool | None) -> bool:
    """Whether a PATCH would change the account's role (sending back the role it has changes nothing)."""
    return is_staff is not None and is_staff != user.is_staff


def user_update_by_admin(*, user: User, by: User, **changes) -> User:
    """An admin changes an account (PATCH /api/v1/users/{id}): only a superuser changes a role or a
    superuser's account (PermissionDenied, a 403, otherwise; the caller checks the credential a role
    change needs); each field that changes is an `admin_change` event on the target's record."""
    if user.is_superuser and not by.is_superuser:
        raise PermissionDenied(SUPERUSER_CHANGE_SUPERUSER_ONLY)
    if user_role_change_is_requested(user=user, is_staff=changes.get("is_staff")) and not by.is_superuser:
        raise PermissionDenied(ROLE_CHANGE_SUPERUSER_ONLY)
    before = {name: getattr(user, name) for name in changes}
    with transaction.atomic():
        user_update(user=user, **changes)
        for name in sorted(changes):
            if getattr(user, name) != before[name]:
                detail = {"change": ADMIN_CHANGE_FIELDS[name], "to": getattr(user, name), "by": by.pk}
                security_event_record(user=user, type=SecurityEventType.ADMIN_CHANGE, detail=detail)
    if "is_staff" in changes and before["is_staff"] != user.is_staff:
        logger.info("admin rights of user %s set to %s by superuser %s", user.pk, user.is_staff, by.pk)
    return user


def user_deactivate(*, user: User) -> User:
    """Deactivate an account: its tokens, sessions and API keys stop working at once."""
    return user_update(user=user, is_active=False)


@transaction.atomic
def user_password_change(
    *, user: User, current_password: str, new_password: str, keep_session_id=None, revoke_api_keys: bool = False
) -> None:
    """Change the password; every other session of the user is revoked, the calling one stays. With
    `revoke_api_keys` every API key of the user is revoked too (apikeys, by accounts.signals.password_changed)."""
    if not user.check_password(current_password):
        raise ValidationError({"current_password": ["Current password is incorrect."]})
    _validate_password(password=new_password, user=user)
    user.set_password(new_password)
    user.save(update_fields=["password"])
    auth_sessions_revoke_all(user=user, reason="password_changed", except_session_id=keep_session_id)
    signals.password_changed.send(sender=User, user=user, changed_at=timezone.now(), revoke_api_keys=revoke_api_keys)
    security_event_record(user=user, type=SecurityEventType.PASSWORD_CHANGE)


# MAIL: rendered from templates, sent by the worker after commit
# ------------------------------------------------------------------------------
# The request only queues a job (MAIL_JOB) naming the mail and the account; the worker looks the account
# up, makes the link's token and sends the mail, so no token ever sits in the broker, and no request waits
# on SMTP or depends on whether an address is registered. Templates live in
# accounts/templates/accounts/email/<name>.txt, .html and _subject.txt; a deployer overrides them from a
# directory in TEMPLATE_DIRS.


def request_origin(request) -> str:
    """scheme://host of the request (its Host, vetted by ALLOWED_HOSTS): where links point without FRONTEND_URL."""
    return request.build_absolute_uri("/").rstrip("/")


def _mail_send_on_commit(kind: str, **params) -> None:
    """Queue the mail job once the transaction commits (at once outside one), so the worker finds the rows."""
    transaction.on_commit(lambda: _mail_job_send(kind, params))


def _mail_job_send(kind: str, params: dict) -> None:
    try:
        config.celery_app.send_task(MAIL_JOB, kwargs={"kind": kind, **params})
    except Exception:  # a broker outage must not turn a committed answer into a 500; the user can ask again
        logger.exception("could not queue the %s mail job", kind)


def _link(*, origin: str, path: str, user: User, token: str) -> str:
    base = settings.FRONTEND_URL or origin
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return f"{base}{path}?{urlencode({'uid': uid, 'token': token})}"


def _mail_render(name: str, *, to: str, context: dict) -> EmailMultiAlternatives:
    """Plain text plus HTML, from the templates accounts/email/<name>{.txt,.html,_subject.txt}."""
    context = {"site_name": "Gatehouse", **context}
    subject = " ".join(render_to_string(f"accounts/email/{name}_subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject, render_to_string(f"accounts/email/{name}.txt", context), settings.DEFAULT_FROM_EMAIL, [to]
    )
    message.attach_alternative(render_to_string(f"accounts/email/{name}.html", context), "text/html")
    return message


def _password_reset_recipients(email: str) -> list[User]:
    """Active accounts with this address: the verified holder if there is one (the address is theirs),
    else every holder (under mandatory several unverified accounts may name it; each mail names its account)."""
    holders = list(User.objects.filter(email__iexact=email, is_active=True).order_by("pk"))
    verified = [user for user in holders if user.email_verified]
    return verified or holders


def _mails_password_reset(*, email: str, origin: str) -> list[EmailMultiAlternatives]:
    path = settings.FRONTEND_PASSWORD_RESET_PATH
    return [
        _mail_render(
            "password_reset",
            to=user.email,
            context={
                "user": user,
                "link": _link(origin=origin, path=path, user=user, token=password_reset_token.make_token(user)),
                "valid_minutes": settings.PASSWORD_RESET_TIMEOUT // 60,
            },
        )
        for user in _password_reset_recipients(email)
    ]


def _mails_email_verify(*, user_id: int, origin: str) -> list[EmailMultiAlternatives]:
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None or not email_verification_target(user=user):
        return []  # gone, or verified since the job was queued: nothing to send
    token = email_verification_token.make_token(user)
    return [
        _mail_render(
            "email_verify",
            to=email_verification_target(user=user),
            context={
                "user": user,
                "address": email_verification_target(user=user),
                "is_change": bool(user.pending_email),
                "link": _link(origin=origin, path=settings.FRONTEND_EMAIL_VERIFY_PATH, user=user, token=token),
                "valid_hours": settings.EMAIL_VERIFICATION_TIMEOUT // 3600,
            },
        )
    ]


def _mails_password_reset_done(*, user_id: int, ip_address: str | None = None) -> list[EmailMultiAlternatives]:
    user = User.objects.filter(pk=user_id).first()
    if user is None or not user.email:
        return []
    context = {"user": user, "ip_address": ip_address, "when": timezone.now()}
    return [_mail_render("password_reset_done", to=user.email, context=context)]


def _mails_email_changed(*, user_id: int, old_email: str) -> list[EmailMultiAlternatives]:
    user = User.objects.filter(pk=user_id).first()
    if user is None or not old_email:
        return []
    return [_mail_render("email_changed", to=old_email, context={"user": user, "old_email": old_email})]


MAIL_KINDS = {
    "password_reset": _mails_password_reset,
    "email_verify": _mails_email_verify,
    "password_reset_done": _mails_password_reset_done,
    "email_changed": _mails_email_changed,
}


def account_mail_deliver(*, kind: str, **params) -> int:
    """Build and send the mails of one job (accounts.jobs.send_account_mail); returns how many were sent.

    SMTP errors propagate, for the job to retry with back-off. Delivery is at least once: a retry after a
    partial failure, or a redelivered message, may send a mail twice (harmless: each link works once)."""
    if kind not in MAIL_KINDS:
        raise ValueError(f"unknown account mail {kind!r}")
    messages = MAIL_KINDS[kind](**params)
    if not messages:
        return 0
    sent = get_connection().send_messages(messages) or 0
    logger.info("sent %s %s mail(s)", sent, kind)
    return sent


def mail_send_test(*, to: str) -> str:
    """Send a test mail now, through the configured backend (manage.py send_test_email); returns the backend's
    dotted path. Raises what the backend raises (SMTPException, OSError)."""
    backend = settings.EMAIL_BACKEND
    if backend == "django.core.mail.backends.smtp.EmailBackend":
        backend += f" ({settings.EMAIL_HOST}:{settings.EMAIL_PORT})"
    _mail_render("test", to=to, context={"backend": backend}).send()
    return backend


# PASSWORD RESET
# ------------------------------------------------------------------------------


def password_reset_request(*, email: str, origin: str) -> None:
    """Queue a reset mail for `email`, whether or not it is registered: the worker looks the address up.

    So the request does the same work (no query, one job) for every address, and neither its answer nor its
    time tells which addresses have accounts. Only active accounts get a mail (_password_reset_recipients)."""
    _mail_send_on_commit("password_reset", email=User.objects.normalize_email(email).strip(), origin=origin)


def _user_from_uid(uid: str, *, lock: bool = False) -> User | None:
    try:
        pk = int(urlsafe_base64_decode(uid).decode())
    except (ValueError, TypeError, UnicodeDecodeError, OverflowError):
        return None
    if not -(2**63) <= pk < 2**63:
        return None
    users = User.objects.select_for_update() if lock else User.objects.all()
    return users.filter(pk=pk, is_active=True).first()


@transaction.atomic
def password_reset_confirm(*, uid: str, token: str, new_password: str, ip_address: str | None = None) -> User:
    """Set a new password from a reset link. The token works once (Django's generator hashes the password
    and last_login) until PASSWORD_RESET_TIMEOUT; one 400 for an invalid, used or expired link.

    Then everything that proved the old identity dies: every session and token of the user (the cut-off
    moves as for logout-all), every API key created before now (apikeys, by accounts.signals.password_reset).
    The address is verified as well (the link was mailed to it), an event is recorded and a notice mailed."""
    # The row lock makes two concurrent uses of one link take turns: the second sees the new password.
    user = _user_from_uid(uid, lock=True)
    if user is None or not password_reset_token.check_token(user, token):
        raise ValidationError({"token": [RESET_LINK_INVALID]})
    _validate_password(password=new_password, user=user, field="new_password")
    now = timezone.now()
    user.set_password(new_password)
    user.tokens_valid_after = now
    user.save(update_fields=["password", "tokens_valid_after"])
    auth_sessions_revoke_all(user=user, reason="password_reset")
    signals.password_reset.send(sender=User, user=user, reset_at=now)
    if not user.email_verified and user.email:
        _email_claim(user=user, address=user.email, quiet=True)
    security_event_record(user=user, type=SecurityEventType.PASSWORD_RESET)
    _mail_send_on_commit("password_reset_done", user_id=user.pk, ip_address=ip_address)
    return user


# EMAIL VERIFICATION AND CHANGE
# ------------------------------------------------------------------------------


def email_verification_target(*, user: User) -> str:
    """The address a verification link would verify: the pending one, else an unverified email; "" if none."""
    if user.pending_email:
        return user.pending_email
    return user.email if user.email and not user.email_verified else ""


def email_verification_send(*, user: User, origin: str) -> bool:
    """Queue a verification mail if the account has an address to verify; returns whether one was queued."""
    if not email_verification_target(user=user):
        return False
    _mail_send_on_commit("email_verify", user_id=user.pk, origin=origin)
    return True


def _email_claim(*, user: User, address: str, quiet: bool = False) -> bool:
    """Make `address` the user's verified, claimed email. The first to verify an address keeps it: when a
    verified account (or, under optional, any claiming account) holds it, refuse (ValidationError, or False
    when `quiet`). Under mandatory the unverified accounts naming it keep the text but never the claim, and
    are told when they next try to verify. The unique constraint settles a race between two verifications."""
    if verification_is_mandatory():
        _release_unverified_claims(email=address, exclude_id=user.pk)
    taken = User.objects.filter(email__iexact=address, email_claimed=True).exclude(pk=user.pk)
    if not taken.exists():
        user.email, user.pending_email = address, ""
        user.email_verified = user.email_claimed = True
        try:
            with transaction.atomic():
                user.save(update_fields=["email", "pending_email", "email_verified", "email_claimed"])
            _forget_cached_sessions(user_id=user.pk)  # cached sessions carry the user row
            return True
        except IntegrityError:
            user.refresh_from_db(fields=["email", "pending_email", "email_verified", "email_claimed"])
    if quiet:
        return False
    raise ValidationError({"email": [EMAIL_TAKEN_BY_OTHER]})


@transaction.atomic
def email_verify(*, uid: str, token: str) -> User:
    """Follow a verification link: the address it was mailed to becomes the account's verified email (a
    pending change takes effect now: an email_change event and a notice to the old address). 400 when the
    link is invalid, used or expired, or when another account verified the address first."""
    user = _user_from_uid(uid, lock=True)
    if user is None or not email_verification_token.check_token(user, token):
        raise ValidationError({"token": [VERIFY_LINK_INVALID]})
    old_email, was_verified = user.email, user.email_verified
    target = email_verification_target(user=user)
    _email_claim(user=user, address=target)
    if old_email.lower() != target.lower():
        security_event_record(user=user, type=SecurityEventType.EMAIL_CHANGE, detail={"from": old_email, "to": target})
        _mail_send_on_commit("email_changed", user_id=user.pk, old_email=old_email)
    elif not was_verified:
        security_event_record(user=user, type=SecurityEventType.EMAIL_VERIFIED, detail={"email": target})
    return user


def email_change_is_requested(*, user: User, email: str | None) -> bool:
    """Whether `email` (from PATCH /auth/me) differs from the current address, so the change needs a recent
    authentication; sending back the address you have is no change."""
    return email is not None and User.objects.normalize_email(email).lower() != user.email.lower()


@transaction.atomic
def email_change_request(*, user: User, email: str, origin: str) -> User:
    """Ask to change the address: it is stored as pending_email and mailed a verification link; `email`
    changes once that link is followed (email_verify). 409 when the address is taken (see _email_holders).
    Asking again replaces the pending address, and the earlier link stops working."""
    email = User.objects.normalize_email(email)
    if email.lower() == user.email.lower():
        if user.pending_email:  # changed their mind: keep the current address
            user.pending_email = ""
            user.save(update_fields=["pending_email"])
            _forget_cached_sessions(user_id=user.pk)
        return user
    _ensure_identity_free(email=email, exclude_id=user.pk)
    user.pending_email = email
    user.save(update_fields=["pending_email"])
    _forget_cached_sessions(user_id=user.pk)  # cached sessions carry the user row
    email_verification_send(user=user, origin=origin)
    return user


@transaction.atomic
def user_profile_update(*, user: User, origin: str, name: str | None = None, email: str | None = None) -> User:
    """PATCH /auth/me: the name changes at once; an email change waits for the new address to be verified."""
    if name is not None:
        user_update(user=user, name=name)
    if email is not None:
        email_change_request(user=user, email=email, origin=origin)
    return user


# LOGIN SESSIONS AND TOKENS
# ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenPair:
    access: SessionAccessToken
    refresh: SessionRefreshToken

    @property
    def expires_in(self) -> int:
        return int(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds())


@dataclass(frozen=True)
class MFAChallengeIssued:
    """The first step of a two-factor login passed: the mfa_token to send back with a code."""

    mfa_token: str = field(repr=False)
    methods: tuple[str, ...] = mfa.METHODS


def _refresh_expiry():
    return timezone.now() + settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"]


def _session_end(session: AuthSession):
    """The absolute end of a session: SESSION_MAX_AGE_DAYS after its login, however often it is refreshed."""
    return session.created_at + timedelta(days=settings.SESSION_MAX_AGE_DAYS)


def _issue_tokens(*, session: AuthSession) -> TokenPair:
    """A new access/refresh pair for the session; the refresh token is recorded by jti only."""
    refresh = SessionRefreshToken()
    refresh["user_id"] = str(session.user_id)
    refresh[SESSION_CLAIM] = str(session.pk)
    RefreshTokenRecord.objects.create(session=session, jti=refresh["jti"], expires_at=session.expires_at)
    return TokenPair(access=refresh.access_token, refresh=refresh)


def auth_password_check(*, username: str, password: str, request=None) -> User:
    """The active user whose username (or email) and password these are. One generic 401 whatever went
    wrong (unknown user, wrong password, inactive user), with the same work done in each case."""
    if len(password) > settings.PASSWORD_MAX_LENGTH:
        raise AuthenticationError(LOGIN_FAILED)
    user = authenticate(request, username=username, password=password)
    if user is None:
        raise AuthenticationError(LOGIN_FAILED)
    auth_email_verified_check(user=user, request=request)
    return user


def auth_email_verified_check(*, user: User, request=None) -> None:
    """Raise EmailUnverified if ACCOUNT_EMAIL_VERIFICATION=mandatory and the user's address is not verified;
    for every password login (the API's, the browsable API's form) once the password was right."""
    if verification_is_mandatory() and user.email and not user.email_verified:
        # Only someone who knows the password gets here, so this tells a stranger nothing. The account cannot
        # log in to ask for another link, so the refusal sends one (at most one per VERIFY_ON_LOGIN_SECONDS).
        if request is not None and request_cache.add(f"verify-on-login:{user.pk}", 1, timeout=VERIFY_ON_LOGIN_SECONDS):
            email_verification_send(user=user, origin=request_origin(request))
        raise EmailUnverified()


@transaction.atomic
def auth_session_open(
    *, user: User, user_agent: str = "", ip_address: str | None = None, second_factor: str | None = None
) -> TokenPair:
    """Open a session for a user who has proved who they are (the password, and a code when two-factor
    is on): a `login` event, and the session counts as recently authenticated."""
    now = timezone.now()
    session = AuthSession.objects.create(
        user=user,
        created_at=now,
        last_seen=now,
        authenticated_at=now,
        expires_at=_refresh_expiry(),
        user_agent=user_agent[:512],
        ip_address=ip_address,
    )
    update_last_login(None, user)
    detail = {"session": str(session.pk)}
    if second_factor:
        detail["mfa"] = second_factor
    security_event_record(user=user, type=SecurityEventType.LOGIN, detail=detail)
    return _issue_tokens(session=session)


def auth_login(
    *,
    username: str,
    password: str,
    user_agent: str = "",
    ip_address: str | None = None,
    request=None,
    allow_second_step: bool = True,
) -> TokenPair | MFAChallengeIssued:
    """Check the credentials and open a session; or, when two-factor is on, issue the mfa_token that
    POST /auth/login/mfa exchanges with a code for the session. `allow_second_step=False` (the OAuth2
    form, whose clients cannot take a second step) refuses two-factor users with a 401 saying where to go."""
    user = auth_password_check(username=username, password=password, request=request)
    if user.mfa_enabled:
        if not allow_second_step:
            raise AuthenticationError(MFA_USE_LOGIN)
        return mfa_challenge_issue(user=user)
    return auth_session_open(user=user, user_agent=user_agent, ip_address=ip_address)


def auth_refresh(*, refresh_token: str) -> TokenPair:
    """Exchange a refresh token for a new pair. Each token works once; a second use revokes its session."""
    try:
        presented = SessionRefreshToken(refresh_token)
    except TokenError:
        raise AuthenticationError(TOKEN_INVALID) from None
    session = AuthSession.objects.select_related("user").filter(pk=presented.session_id).first()
    if session is None or not _session_is_valid(session=session, user=session.user, token=presented):
        raise AuthenticationError(TOKEN_INVALID)
    ends_at = _session_end(session)
    if timezone.now() >= ends_at:
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
        # Each refresh extends the session: it lives as long as its newest refresh token, never past its end.
        session.expires_at = min(_refresh_expiry(), ends_at)
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
    _forget_cached_sessions(user_id=session.user_id)
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
    # A login waiting for its second factor would open a new session: it ends with the others.
    MFAChallenge.objects.filter(user=user, used_at__isnull=True).delete()
    _forget_cached_sessions(user_id=user.pk)
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


def auth_recently_authenticated(*, session: "SessionState") -> bool:
    """Whether the session's user proved who they are within REAUTH_WINDOW_MINUTES (login or reauth)."""
    window = timedelta(minutes=settings.REAUTH_WINDOW_MINUTES)
    return session.authenticated_at >= timezone.now() - window


def auth_reauth(*, user: User, session_id, password: str, code: str | None = None) -> None:
    """Prove who you are again, in the calling session: sensitive actions are allowed for the next
    REAUTH_WINDOW_MINUTES. The password, and a TOTP or recovery code when two-factor is on; anything
    wrong is a 401 (and changes nothing but the code it may have used up)."""
    if len(password) > settings.PASSWORD_MAX_LENGTH or not user.check_password(password):
        raise AuthenticationError(REAUTH_FAILED)
    if user.mfa_enabled:
        if not code:
            raise AuthenticationError(REAUTH_CODE_MISSING)
        if _mfa_code_use(user=user, code=code, during="reauth") is None:
            raise AuthenticationError(MFA_CODE_WRONG)
    AuthSession.objects.filter(pk=session_id, user=user).update(authenticated_at=timezone.now())
    _forget_cached_sessions(user_id=user.pk)


@dataclass(frozen=True)
class PruneReport:
    sessions: int
    refresh_tokens: int
    security_events: int = 0


@transaction.atomic
def auth_records_prune(*, retention_days: int = 30) -> PruneReport:
    """Delete what can no longer authenticate: refresh-token records past their expiry (a
    replayed expired token fails on its signature, so reuse detection no longer needs them),
    and sessions that ended more than `retention_days` ago (kept that long for audit); and
    security events older than SECURITY_EVENTS_RETENTION_DAYS (0 keeps them)."""
    now = timezone.now()
    events = _security_events_prune(now=now)
    _, by_model = RefreshTokenRecord.objects.filter(expires_at__lt=now).delete()
    MFAChallenge.objects.filter(expires_at__lt=now).delete()  # a pending second step is dead after 5 minutes
    cutoff = now - timedelta(days=retention_days)
    ended = AuthSession.objects.filter(Q(expires_at__lt=cutoff) | Q(revoked_at__lt=cutoff))
    _, cascaded = ended.delete()
    return PruneReport(
        sessions=cascaded.get(AuthSession._meta.label, 0),
        refresh_tokens=by_model.get(RefreshTokenRecord._meta.label, 0)
        + cascaded.get(RefreshTokenRecord._meta.label, 0),
        security_events=events,
    )


def _security_events_prune(*, now) -> int:
    days = settings.SECURITY_EVENTS_RETENTION_DAYS
    if not days:
        return 0
    deleted, _ = SecurityEvent.objects.filter(created_at__lt=now - timedelta(days=days)).delete()
    return deleted


# TWO-FACTOR: TOTP (RFC 6238), recovery codes, the second step of a login
# ------------------------------------------------------------------------------
# The formats are in accounts/mfa.py. A code is "used" by a conditional UPDATE (a TOTP step moves
# last_used_step forward, a recovery code sets used_at), never by a read then a write, so two requests
# with the same code cannot both succeed. Failures record an `mfa_failed` event outside any transaction
# of the caller's, so raising the error afterwards does not roll the event back.


@dataclass(frozen=True)
class TOTPSetup:
    """What the user copies into an authenticator app; the secret leaves the server this once."""

    secret: str = field(repr=False)
    otpauth_url: str = field(repr=False)


def _totp_associated_data(*, user_id: int) -> bytes:
    # Binds the sealed secret to its owner: copied onto another user's row, it does not open.
    return f"gatehouse.totp-secret.v1:{user_id}".encode()


def _totp_sealed(device: TOTPDevice) -> crypto.Sealed:
    return crypto.Sealed(
        kid=device.kid,
        wrapped_key=bytes(device.wrapped_key),
        nonce=bytes(device.nonce),
        ciphertext=bytes(device.ciphertext),
    )


def _totp_secret(device: TOTPDevice) -> str | None:
    """The device's secret, or None (logged, never raised) when its RSA key is gone or the row was altered."""
    try:
        return crypto.unseal(
            _totp_sealed(device), associated_data=_totp_associated_data(user_id=device.user_id)
        ).decode()
    except crypto.CryptoError as error:
        logger.error("TOTP secret of user %s does not open: %s", device.user_id, error)
        return None


def _totp_use(*, device: TOTPDevice, code: str) -> bool:
    secret = _totp_secret(device)
    step = mfa.totp_matching_step(secret=secret, code=code) if secret else None
    if step is None:
        return False
    # The replay guard: of two uses of one code (or of an older one), only the UPDATE that still
    # finds last_used_step below this step moves it; the other changes no row.
    moved = (
        TOTPDevice.objects.filter(pk=device.pk)
        .filter(Q(last_used_step__isnull=True) | Q(last_used_step__lt=step))
        .update(last_used_step=step)
    )
    return moved == 1


def _recovery_code_use(*, user: User, normalised: str) -> bool:
    code_hash = mfa.recovery_code_hash(user_id=user.pk, normalised=normalised)
    used = RecoveryCode.objects.filter(user=user, code_hash=code_hash, used_at__isnull=True).update(
        used_at=timezone.now()
    )
    return used == 1


def _mfa_code_use(
    *, user: User, code: str, during: str, device: TOTPDevice | None = None, recovery: bool = True
) -> str | None:
    """Use up one of the user's codes: a TOTP code of the confirmed device (or of `device`, being confirmed)
    or, if `recovery`, an unused recovery code. Returns which kind it was; None (and an `mfa_failed` event)
    when it is wrong, used or replayed."""
    normalised = mfa.normalise(code)
    kind = mfa.code_kind(normalised)
    used = False
    if kind == mfa.TOTP:
        device = device or TOTPDevice.objects.filter(user=user, confirmed_at__isnull=False).first()
        used = device is not None and _totp_use(device=device, code=normalised)
    elif kind == mfa.RECOVERY_CODE and recovery:
        used = _recovery_code_use(user=user, normalised=normalised)
    if not used:
        security_event_record(
            user=user, type=SecurityEventType.MFA_FAILED, detail={"during": during, "method": kind or "unknown"}
        )
        return None
    return kind


def _recovery_codes_replace(*, user: User) -> list[str]:
    """Ten new recovery codes for the user, the old ones deleted; the plaintexts exist only in the return value."""
    RecoveryCode.objects.filter(user=user).delete()
    codes = [mfa.recovery_code_new() for _ in range(mfa.RECOVERY_CODE_COUNT)]
    RecoveryCode.objects.bulk_create(
        RecoveryCode(user=user, code_hash=mfa.recovery_code_hash(user_id=user.pk, normalised=mfa.normalise(code)))
        for code in codes
    )
    return codes


def _mfa_flag(*, user: User, on: bool) -> None:
    User.objects.filter(pk=user.pk).update(mfa_enabled=on)
    user.mfa_enabled = on
    _forget_cached_sessions(user_id=user.pk)  # a cached session's user would still tell the old state


def _mfa_remove(*, user: User) -> bool:
    """Delete the device, the recovery codes and any pending mfa_token. Whether two-factor was on."""
    was_on = TOTPDevice.objects.filter(user=user, confirmed_at__isnull=False).exists()
    TOTPDevice.objects.filter(user=user).delete()
    RecoveryCode.objects.filter(user=user).delete()
    MFAChallenge.objects.filter(user=user).delete()
    _mfa_flag(user=user, on=False)
    return was_on


@transaction.atomic
def mfa_totp_setup(*, user: User) -> TOTPSetup:
    """Start two-factor: a new TOTP secret, sealed at rest, not active until confirmed with a first code.
    A setup not yet confirmed is replaced; 409 (Conflict) when two-factor is already on."""
    # Serialises concurrent setups of one user (the device is one-to-one: the second insert would fail).
    User.objects.select_for_update().filter(pk=user.pk).first()
    existing = TOTPDevice.objects.filter(user=user).first()
    if existing is not None and existing.confirmed_at is not None:
        raise Conflict("Two-factor authentication is already on; turn it off first (DELETE /api/v1/auth/mfa/totp).")
    if existing is not None:
        # A new row (a new pk), so that a confirmation racing with this setup cannot confirm the old secret.
        existing.delete()
    secret = mfa.totp_secret_new()
    sealed = crypto.seal(secret.encode(), associated_data=_totp_associated_data(user_id=user.pk))
    TOTPDevice.objects.create(
        user=user, kid=sealed.kid, wrapped_key=sealed.wrapped_key, nonce=sealed.nonce, ciphertext=sealed.ciphertext
    )
    logger.info("TOTP set up (not yet confirmed) for user %s, sealed with RSA key %s", user.pk, sealed.kid)
    return TOTPSetup(secret=secret, otpauth_url=mfa.totp_provisioning_uri(secret=secret, account_name=user.username))


def mfa_totp_confirm(*, user: User, code: str) -> list[str]:
    """Turn two-factor on with a first code from the app; returns the ten recovery codes (their only showing).
    400 for a wrong code or no setup; 409 when it is already on."""
    device = TOTPDevice.objects.filter(user=user).first()
    if device is None:
        raise InvalidInput({"code": ["Set up two-factor first: POST /api/v1/auth/mfa/totp/setup."]})
    if device.confirmed_at is not None:
        raise Conflict("Two-factor authentication is already on.")
    if _mfa_code_use(user=user, code=code, during="confirm", device=device, recovery=False) is None:
        raise InvalidInput({"code": [MFA_CODE_WRONG]})
    with transaction.atomic():
        # By pk: a setup that replaced the device meanwhile made a new row, which this does not confirm.
        confirmed = TOTPDevice.objects.filter(pk=device.pk, confirmed_at__isnull=True).update(
            confirmed_at=timezone.now()
        )
        if not confirmed:
            raise Conflict("The two-factor setup changed meanwhile; set it up again.")
        _mfa_flag(user=user, on=True)
        codes = _recovery_codes_replace(user=user)
        security_event_record(user=user, type=SecurityEventType.MFA_ENABLED)
    return codes


def _require_mfa_code(*, user: User, code: str, during: str) -> str:
    if not user.mfa_enabled:
        raise InvalidInput({"code": ["Two-factor authentication is not on."]})
    kind = _mfa_code_use(user=user, code=code, during=during)
    if kind is None:
        raise InvalidInput({"code": [MFA_CODE_WRONG]})
    return kind


def mfa_totp_disable(*, user: User, code: str) -> None:
    """Turn two-factor off, with a TOTP or a recovery code (the caller checks the recent authentication)."""
    _require_mfa_code(user=user, code=code, during="disable")
    with transaction.atomic():
        _mfa_remove(user=user)
        security_event_record(user=user, type=SecurityEventType.MFA_DISABLED)


def mfa_recovery_codes_regenerate(*, user: User, code: str) -> list[str]:
    """Ten new recovery codes, with a TOTP or a recovery code; the old ones stop working."""
    _require_mfa_code(user=user, code=code, during="recovery_codes")
    with transaction.atomic():
        codes = _recovery_codes_replace(user=user)
        # No event type of its own in the contract: recorded as a change of the two-factor setup.
        security_event_record(
            user=user, type=SecurityEventType.MFA_ENABLED, detail={"change": "recovery_codes_regenerated"}
        )
    return codes


@transaction.atomic
def mfa_reset_by_admin(*, user: User, by: User) -> bool:
    """An admin turns a user's two-factor off (a lost phone and lost codes): an `admin_change` event.
    Returns whether it was on; resetting a user without two-factor changes and records nothing."""
    was_on = _mfa_remove(user=user)
    if was_on:
        security_event_record(
            user=user, type=SecurityEventType.ADMIN_CHANGE, detail={"change": "mfa_reset", "by": by.username}
        )
        logger.info("Two-factor of user %s reset by admin %s", user.pk, by.pk)
    return was_on


def mfa_login_code_check(*, user: User, code: str, during: str) -> bool:
    """For a login that takes the password and the code at once (the admin's form): whether a user whose
    password was right may go on: two-factor is off, or `code` is one of theirs (and is now used up)."""
    if not user.mfa_enabled:
        return True
    return bool(code) and _mfa_code_use(user=user, code=code, during=during) is not None


def mfa_challenge_issue(*, user: User) -> MFAChallengeIssued:
    """The mfa_token of a login whose password was right, for POST /auth/login/mfa; only its hash is stored."""
    token = mfa.mfa_token_new()
    now = timezone.now()
    MFAChallenge.objects.create(
        token_hash=mfa.mfa_token_hash(token), user=user, created_at=now, expires_at=now + MFA_TOKEN_LIFETIME
    )
    return MFAChallengeIssued(mfa_token=token)


def auth_login_mfa(*, mfa_token: str, code: str, user_agent: str = "", ip_address: str | None = None) -> TokenPair:
    """The second step of a two-factor login: the mfa_token and a TOTP or recovery code open the session.

    The token lives MFA_TOKEN_LIFETIME, works once, and dies after MFA_TOKEN_MAX_ATTEMPTS wrong codes:
    each attempt is counted by a conditional UPDATE before the code is looked at, so even concurrent
    guesses get that many in all. 401 for anything wrong."""
    challenge = MFAChallenge.objects.select_related("user").filter(token_hash=mfa.mfa_token_hash(mfa_token)).first()
    if challenge is None:
        raise AuthenticationError(MFA_TOKEN_INVALID)
    now = timezone.now()
    counted = MFAChallenge.objects.filter(
        pk=challenge.pk, used_at__isnull=True, expires_at__gt=now, attempts__lt=MFA_TOKEN_MAX_ATTEMPTS
    ).update(attempts=F("attempts") + 1)
    user = challenge.user
    # A deactivation or a logout-all after the password step also ends the pending login.
    if not counted or not user.is_active or challenge.created_at < user.tokens_valid_after:
        raise AuthenticationError(MFA_TOKEN_INVALID)
    kind = _mfa_code_use(user=user, code=code, during="login")
    if kind is None:
        raise AuthenticationError(MFA_CODE_WRONG)
    consumed = MFAChallenge.objects.filter(pk=challenge.pk, used_at__isnull=True).update(used_at=timezone.now())
    if not consumed:  # a concurrent request with the same token and another valid code won
        raise AuthenticationError(MFA_TOKEN_INVALID)
    return auth_session_open(user=user, user_agent=user_agent, ip_address=ip_address, second_factor=kind)


def mfa_totp_reencrypt() -> int:
    """Re-seal every TOTP secret not wrapped by the current RSA key (after `manage.py rotate_rsa_key`);
    returns how many moved. A row that does not open keeps its kid (see mfa_totp_kids_in_use)."""
    current = crypto.keyring().current.kid
    moved = 0
    for device_id in TOTPDevice.objects.exclude(kid=current).values_list("pk", flat=True):
        with transaction.atomic():
            device = TOTPDevice.objects.select_for_update().filter(pk=device_id).first()
            secret = _totp_secret(device) if device is not None else None
            if secret is None:
                continue
            sealed = crypto.seal(secret.encode(), associated_data=_totp_associated_data(user_id=device.user_id))
            TOTPDevice.objects.filter(pk=device.pk).update(
                kid=sealed.kid, wrapped_key=sealed.wrapped_key, nonce=sealed.nonce, ciphertext=sealed.ciphertext
            )
            moved += 1
    return moved


def mfa_totp_kids_in_use() -> set[str]:
    """The RSA key ids that stored TOTP secrets are sealed with (they must stay in the keyring)."""
    return set(TOTPDevice.objects.values_list("kid", flat=True).distinct())


# AUTHENTICATING A REQUEST
# ------------------------------------------------------------------------------


# Validated sessions, each with its user, are kept in the process's memory (config/local_cache.py), tagged
# with their user. Every change that can revoke a user's tokens or change what they may do (a revocation,
# any save or deletion of the user row) invalidates the tag in every process before the change is answered,
# so a warm request costs no query and no round trip, and the very next request after a change reads the row.


def _forget_cached_sessions(*, user_id) -> None:
    """Make every process forget the user's cached sessions, now and again once the change is committed."""
    auth_cache().invalidate([user_tag(user_id)])


def user_row_changed(sender, instance, **kwargs) -> None:
    """post_save and post_delete receiver for User (accounts/apps.py): whatever saves or deletes a user (the
    Django admin, the shell, a service) outdates the copies of the row in cached sessions."""
    _forget_cached_sessions(user_id=instance.pk)


@dataclass(frozen=True, slots=True)
class SessionState:
    """What authentication and the permissions read of a login session (`token.auth_session`). Frozen, so the
    cached one is shared by every request of the process as it is: only its user is copied per request."""

    id: uuid.UUID
    user_id: int
    revoked_at: datetime | None
    expires_at: datetime
    last_seen: datetime
    authenticated_at: datetime

    @classmethod
    def of(cls, session: AuthSession) -> "SessionState":
        return cls(
            id=session.pk,
            user_id=session.user_id,
            revoked_at=session.revoked_at,
            expires_at=session.expires_at,
            last_seen=session.last_seen,
            authenticated_at=session.authenticated_at,
        )


def _session_is_valid(*, session: AuthSession | SessionState, user: User, token) -> bool:
    return (
        session.revoked_at is None
        and session.expires_at > timezone.now()
        and user.is_active
        and str(user.pk) == str(token.get("user_id"))
        # iat has one-second resolution; the session revocation that comes with every
        # move of the cut-off covers tokens issued within that second.
        and token.issued_at >= user.tokens_valid_after.replace(microsecond=0)
    )


def _session_query(session_id) -> AuthSession | None:
    try:
        return AuthSession.objects.select_related("user").filter(pk=session_id).first()
    except ValidationError:  # not a UUID
        return None


def _load_session(*, session_id: str) -> tuple[SessionState | None, User | None, int | None]:
    """The session, its user and the cache stamp they were read under. Warm: no query; cold: one."""
    cached, stamp = auth_cache().get(("session", session_id))
    if cached is not None:
        return *cached, stamp
    row = _session_query(session_id)
    if row is None:
        return None, None, stamp
    session = SessionState.of(row)
    _cache_session(session, row.user, stamp=stamp)
    return session, row.user, stamp


def _cache_session(session: SessionState, user: User, *, stamp: int | None) -> None:
    auth_cache().put(
        ("session", str(session.id)), (session, user), tags=[user_tag(session.user_id)], stamp=stamp, copy=copy_user_of
    )


def _touch_session(session: SessionState, user: User, *, stamp: int | None) -> SessionState:
    """Write last_seen at most once a minute, with a conditional UPDATE (no read-modify-write)."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.AUTH_LAST_SEEN_RESOLUTION_SECONDS)
    if session.last_seen > cutoff:
        return session
    AuthSession.objects.filter(pk=session.id, last_seen__lt=cutoff).update(last_seen=now)
    session = replace(session, last_seen=now)
    _cache_session(session, user, stamp=stamp)  # kept only if nothing changed since it was read
    return session


def access_token_authenticate(*, raw_token: str) -> tuple[User, SessionAccessToken]:
    """Verify an access token and its session. Raises AuthenticationError when either is not valid."""
    try:
        token = SessionAccessToken(raw_token)
    except TokenError:
        raise AuthenticationError(TOKEN_INVALID) from None
    session, user, stamp = _load_session(session_id=token.session_id)
    if session is None or not _session_is_valid(session=session, user=user, token=token):
        raise AuthenticationError(TOKEN_INVALID)
    token.auth_session = _touch_session(session, user, stamp=stamp)  # for RecentAuthentication
    return user, token
