"""Reads of API keys."""

from django.db.models import Q, QuerySet
from django.utils import timezone

from apikeys import keys
from apikeys.models import APIKey


def api_key_by_hash(*, key_hash: str) -> APIKey | None:
    """The key with this hash, its owner joined (`key.owner` needs no query): one query on the unique index."""
    return APIKey.objects.select_related("owner").filter(key_hash=key_hash).first()


def api_key_list(*, user) -> QuerySet[APIKey]:
    """The user's keys, newest first (active, revoked and expired alike); served by the (owner, -created_at) index."""
    return APIKey.objects.filter(owner=user).order_by("-created_at", "-id")


def api_key_active_count(*, user) -> int:
    return (
        APIKey.objects.filter(owner=user, revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
        .count()
    )


def api_key_find(*, reference: str) -> list[APIKey]:
    """Keys matching a CLI reference: a numeric id, a full key (looked up by its hash) or a display prefix."""
    reference = reference.strip()
    queryset = APIKey.objects.select_related("owner")
    if reference.isdigit():
        return list(queryset.filter(pk=int(reference)))
    if keys.is_well_formed(reference):
        return list(queryset.filter(key_hash=keys.hash_key(reference)))
    if len(reference) <= APIKey._meta.get_field("prefix").max_length:
        return list(queryset.filter(prefix=reference))
    return []
