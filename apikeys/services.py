"""API keys: every write and rule about them. The API, the admin and the CLI all call these."""

import ipaddress
import logging
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts import services as account_services
from accounts.models import SecurityEventType
from apikeys import keys
from apikeys.models import EXPIRES_DAYS_MAX, EXPIRES_DAYS_MIN, NAME_MAX_LENGTH, APIKey
from apikeys.selectors import api_key_active_count, api_key_by_hash
from config.errors import AuthenticationError, ServiceError

logger = logging.getLogger(__name__)

KEY_INVALID = "Invalid API key."
KEY_MALFORMED = "Malformed API key."
KEY_REVOKED = "API key has been revoked."
KEY_EXPIRED = "API key has expired."


class KeyLimitReached(ServiceError):
    """The owner already has as many active keys as API_KEYS_MAX_ACTIVE_PER_USER allows."""

    code = "key_limit_reached"


def _validate(*, name: str, expires_days: int | None) -> str:
    errors = {}
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
def api_key_create(*, user, name: str, expires_days: int | None = None) -> tuple[APIKey, str]:
    """Create a key for `user`; returns (key, plaintext). The plaintext is not stored: show it once."""
    name = _validate(name=name, expires_days=expires_days)
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
    )
    logger.info("API key %s (%s) created for user %s", key.pk, key.prefix, user.pk)
    account_services.security_event_record(
        user=user, type=SecurityEventType.API_KEY_CREATED, detail={"id": key.pk, "prefix": key.prefix, "name": name}
    )
    return key, plaintext


def api_key_revoke(*, key: APIKey, by=None) -> APIKey:
    """Revoke a key: it is rejected from the next request on. Revoking twice is harmless."""
    if key.revoked_at is None:
        now = timezone.now()
        # Conditional UPDATE: of two concurrent revocations, the first one's time stands.
        if APIKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now):
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


def _touch(key: APIKey, *, ip_address: str | Callable[[], str | None] | None) -> None:
    """Record last use at most once per AUTH_LAST_SEEN_RESOLUTION_SECONDS, with one conditional UPDATE.

    The WHERE clause makes concurrent requests of the same key write once between them,
    and the check before it makes most requests write nothing at all.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.AUTH_LAST_SEEN_RESOLUTION_SECONDS)
    if key.last_used is not None and key.last_used > cutoff:
        return
    ip_address = _valid_ip(ip_address() if callable(ip_address) else ip_address)
    APIKey.objects.filter(Q(last_used__isnull=True) | Q(last_used__lte=cutoff), pk=key.pk).update(
        last_used=now, last_used_ip=ip_address
    )
    key.last_used, key.last_used_ip = now, ip_address


def _valid_ip(value: str | None) -> str | None:
    # The address may come from X-Forwarded-For (NUM_PROXIES): never let a forged one reach an inet column.
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


def api_key_authenticate(*, raw_key: str, ip_address: str | Callable[[], str | None] | None = None) -> APIKey:
    """The active key for `raw_key`, its owner joined (`key.owner`). Raises AuthenticationError otherwise.

    `ip_address` may be a function: it is called only when last_used is written.

    Malformed keys (wrong length, alphabet or checksum) are rejected before any query; a
    well-formed key costs one query on the unique hash index, joined to the owner, plus an
    UPDATE at most once a minute. Nothing is cached, so revocation and owner deactivation
    take effect on the very next request.
    """
    if not keys.is_well_formed(raw_key):
        raise AuthenticationError(KEY_MALFORMED)
    key = api_key_by_hash(key_hash=keys.hash_key(raw_key))
    if key is None or not key.owner.is_active:
        raise AuthenticationError(KEY_INVALID)
    if key.revoked_at is not None:
        raise AuthenticationError(KEY_REVOKED)
    if key.is_expired:
        raise AuthenticationError(KEY_EXPIRED)
    _touch(key, ip_address=ip_address)
    return key
