"""API keys: every write and rule about them. The API, the admin and the CLI all call these."""

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import ClassVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts import services as account_services
from accounts.models import SecurityEventType, User
from apikeys import keys
from apikeys.models import EXPIRES_DAYS_MAX, EXPIRES_DAYS_MIN, NAME_MAX_LENGTH, APIKey
from apikeys.selectors import api_key_active_count, api_key_by_hash
from config import scopes as scope_names
from config.errors import AuthenticationError, ServiceError
from config.local_cache import auth_cache, copy_user_of, user_tag

logger = logging.getLogger(__name__)

KEY_INVALID = "Invalid API key."
KEY_MALFORMED = "Malformed API key."
KEY_REVOKED = "API key has been revoked."
KEY_EXPIRED = "API key has expired."


class KeyLimitReached(ServiceError):
    """The owner already has as many active keys as API_KEYS_MAX_ACTIVE_PER_USER allows."""

    code = "key_limit_reached"


def _scopes_error(scopes) -> str | None:
    """What is wrong with `scopes` (a list of distinct known scopes, at least one), or None."""
    if not isinstance(scopes, list | tuple) or not all(isinstance(scope, str) for scope in scopes):
        return "Must be a list of scopes."
    unknown = [scope for scope in scopes if scope not in scope_names.ALL_SCOPES]
    if unknown:
        return f"Unknown scope {unknown[0]!r}; the scopes are {', '.join(scope_names.ALL_SCOPES)}."
    if len(set(scopes)) != len(scopes):
        return "Each scope may appear only once."
    if not scopes:
        # A key that may do nothing is a mistake, not a wish: omit `scopes` for a key that may do everything.
        return "Give at least one scope, or omit scopes for a key with every scope."
    return None


def _validate(*, name: str, expires_days: int | None, scopes=None) -> str:
    errors = {}
    if scopes is not None and (problem := _scopes_error(scopes)):
        errors["scopes"] = [problem]
    name = (name or "").strip()
    if not name:
        errors["name"] = ["This field may not be blank."]
    elif len(name) > NAME_MAX_LENGTH:
        errors["name"] = [f"Ensure this field has no more than {NAME_MAX_LENGTH} characters."]
    if expires_days is not None and not (
        isinstance(expires_days, int) and EXPIRES_DAYS_MIN <= expires_days <= EXPIRES_DAYS_MAX
    ):
        errors["expires_days"] = [f"Must be between {EXPIRES_DAYS_MIN} and {EXPIRES_DAYS_MAX} days, or null."]
    if errors:
        raise ValidationError(errors)
    return name


def api_key_ensure_capacity(*, user) -> None:
    """Raise KeyLimitReached (400) when the user may not hold another active key."""
    limit = settings.API_KEYS_MAX_ACTIVE_PER_USER
    if limit and api_key_active_count(user=user) >= limit:
        raise KeyLimitReached(
            f"You already have {limit} active API keys, the most allowed. Revoke one you no longer use first."
        )


@transaction.atomic
def api_key_create(
    *, user, name: str, expires_days: int | None = None, scopes: list[str] | None = None
) -> tuple[APIKey, str]:
    """Create a key for `user`; returns (key, plaintext). The plaintext is not stored: show it once.
    `scopes` (config.scopes) limits what the key may do; None: every scope."""
    name = _validate(name=name, expires_days=expires_days, scopes=scopes)
    scopes = scope_names.all_scopes() if scopes is None else scope_names.canonical(scopes)
    # Lock the owner's row so that concurrent creations cannot both pass the cap check.
    get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True).first()
    api_key_ensure_capacity(user=user)
    plaintext = keys.generate()
    now = timezone.now()
    key = APIKey.objects.create(
        owner=user,
        name=name,
        prefix=keys.display_prefix(plaintext),
        key_hash=keys.hash_key(plaintext),
        expires_at=now + timedelta(days=expires_days) if expires_days else None,
        scopes=scopes,
    )
    logger.info("API key %s (%s) created for user %s", key.pk, key.prefix, user.pk)
    account_services.security_event_record(
        user=user,
        type=SecurityEventType.API_KEY_CREATED,
        detail={"id": key.pk, "prefix": key.prefix, "name": name, "scopes": " ".join(scopes)},
    )
    return key, plaintext


def api_key_revoke(*, key: APIKey, by=None) -> APIKey:
    """Revoke a key: it is rejected from the next request on. Revoking twice is harmless."""
    if key.revoked_at is None:
        now = timezone.now()
        # Conditional UPDATE: of two concurrent revocations, the first one's time stands.
        if APIKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now):
            _forget_cached_keys(owner_id=key.owner_id)
            logger.info("API key %s (%s) revoked by %s", key.pk, key.prefix, getattr(by, "pk", "system"))
            by_owner = by is not None and by.pk == key.owner_id
            account_services.security_event_record(
                user=key.owner,
                type=SecurityEventType.API_KEY_REVOKED,
                detail={"id": key.pk, "prefix": key.prefix, "by": "owner" if by_owner else "admin" if by else "system"},
            )
        key.refresh_from_db(fields=["revoked_at"])
    return key


def api_keys_revoke_created_before(*, user, before, reason: str = "a password reset") -> int:
    """Revoke every active key of `user` created before `before` (a password reset: a thief's key must
    die with the password). Returns how many were revoked; each is an api_key_revoked event "by system"."""
    revoked = 0
    for key in APIKey.objects.filter(owner=user, revoked_at__isnull=True, created_at__lt=before).select_related(
        "owner"
    ):
        api_key_revoke(key=key)
        revoked += 1
    if revoked:
        logger.info("revoked %s API key(s) of user %s after %s", revoked, user.pk, reason)
    return revoked


def api_keys_revoke_on_password_reset(sender, *, user, reset_at, **kwargs) -> None:
    """Receiver of accounts.signals.password_reset (connected in apikeys/apps.py)."""
    api_keys_revoke_created_before(user=user, before=reset_at)


def api_keys_revoke_on_password_change(sender, *, user, changed_at, revoke_api_keys, **kwargs) -> None:
    """Receiver of accounts.signals.password_changed: the owner asked for their keys to die with the password."""
    if revoke_api_keys:
        api_keys_revoke_created_before(user=user, before=changed_at, reason="a password change")


def api_keys_revoke_on_deactivation(sender, *, user, deactivated_at, **kwargs) -> None:
    """Receiver of accounts.signals.user_deactivated: a deactivated account keeps no key (nor gets one back)."""
    api_keys_revoke_created_before(user=user, before=deactivated_at, reason="a deactivation")


# AUTHENTICATING A REQUEST
# ------------------------------------------------------------------------------


def _forget_cached_keys(*, owner_id) -> None:
    """Make every process forget the owner's cached keys (and sessions), now and again on commit."""
    auth_cache().invalidate([user_tag(owner_id)])


def api_key_row_changed(sender, instance, **kwargs) -> None:
    """post_save and post_delete receiver for APIKey (apikeys/apps.py): an edit made anywhere (the Django
    admin, the shell) outdates the cached copies of the key."""
    _forget_cached_keys(owner_id=instance.owner_id)


@dataclass(frozen=True, slots=True)
class KeyState:
    """A key as authentication read it: `request.auth` of a request made with it. Frozen, so the cached one
    is shared by every request of the process as it is: only the owner (`request.user`) is copied."""

    scheme: ClassVar[str] = APIKey.scheme

    id: int
    owner_id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used: datetime | None

    @classmethod
    def of(cls, key: APIKey) -> "KeyState":
        return cls(
            id=key.pk,
            owner_id=key.owner_id,
            name=key.name,
            prefix=key.prefix,
            scopes=tuple(key.scopes),
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
            last_used=key.last_used,
        )

    @property
    def pk(self) -> int:
        return self.id

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


def _cache_key(key_hash: str, key: KeyState, owner: User, *, stamp: int | None) -> None:
    auth_cache().put(("apikey", key_hash), (key, owner), tags=[user_tag(key.owner_id)], stamp=stamp, copy=copy_user_of)


def _load_key(key_hash: str) -> tuple[KeyState | None, User | None, int | None]:
    """The key, its owner and the cache stamp they were read under. Warm: no query; cold: one."""
    cached, stamp = auth_cache().get(("apikey", key_hash))
    if cached is not None:
        return *cached, stamp
    row = api_key_by_hash(key_hash=key_hash)
    if row is None:
        return None, None, stamp
    key = KeyState.of(row)
    _cache_key(key_hash, key, row.owner, stamp=stamp)
    return key, row.owner, stamp


def _touch(key: KeyState, *, ip_address: str | Callable[[], str | None] | None) -> KeyState:
    """Record last use at most once per AUTH_LAST_SEEN_RESOLUTION_SECONDS, with one conditional UPDATE; returns
    the key with the last_used written (the same key when nothing was).

    The WHERE clause makes concurrent requests of the same key write once between them,
    and the check before it makes most requests write nothing at all.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.AUTH_LAST_SEEN_RESOLUTION_SECONDS)
    if key.last_used is not None and key.last_used > cutoff:
        return key
    ip_address = _valid_ip(ip_address() if callable(ip_address) else ip_address)
    APIKey.objects.filter(Q(last_used__isnull=True) | Q(last_used__lte=cutoff), pk=key.id).update(
        last_used=now, last_used_ip=ip_address
    )
    return replace(key, last_used=now)


def _valid_ip(value: str | None) -> str | None:
    # The address may come from X-Forwarded-For (NUM_PROXIES): never let a forged one reach an inet column.
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


def api_key_authenticate(
    *, raw_key: str, ip_address: str | Callable[[], str | None] | None = None
) -> tuple[User, KeyState]:
    """(the owner, the key) for an active `raw_key`: `request.user` and `request.auth`. Raises AuthenticationError
    otherwise.

    `ip_address` may be a function: it is called only when last_used is written.

    Malformed keys (wrong length, alphabet or checksum) are rejected before any query; a
    well-formed key costs one query on the unique hash index, joined to the owner, the first
    time a process sees it, and none after (config/local_cache.py), plus an UPDATE at most
    once a minute. Revocation and any change of the owner invalidate the cached copies in
    every process, so they take effect on the very next request.
    """
    if not keys.is_well_formed(raw_key):
        raise AuthenticationError(KEY_MALFORMED)
    key_hash = keys.hash_key(raw_key)
    key, owner, stamp = _load_key(key_hash)
    if key is None or not owner.is_active:
        raise AuthenticationError(KEY_INVALID)
    if key.revoked_at is not None:
        raise AuthenticationError(KEY_REVOKED)
    if key.is_expired:
        raise AuthenticationError(KEY_EXPIRED)
    touched = _touch(key, ip_address=ip_address)
    if touched is not key:
        _cache_key(key_hash, touched, owner, stamp=stamp)  # kept only if nothing changed since it was read
    return owner, touched
