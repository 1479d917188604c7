from django.conf import settings
from django.db import models
from django.utils import timezone

from config import scopes
from config.models import TimeStampedModel

NAME_MAX_LENGTH = 100
EXPIRES_DAYS_MIN, EXPIRES_DAYS_MAX = 1, 3650


class APIKey(TimeStampedModel):
    """A user-bound API key; only its SHA-256 and a display prefix are stored, never the key."""

    # What /auth/validate reports for a request authenticated by a key (a JWT says "jwt").
    scheme = "api_key"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    prefix = models.CharField(
        max_length=16, db_index=True, help_text="First characters of the key, to tell keys apart."
    )
    key_hash = models.CharField(max_length=64, editable=False, help_text="SHA-256 (hex) of the key.")
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # A list from config.scopes.ALL_SCOPES, in that order; checked by config.permissions.APIKeyScope
    # on every request the key makes, from this instance (no query). Keys made before scopes hold all.
    scopes = models.JSONField(
        default=scopes.all_scopes, help_text="What the key may do (config/scopes.py); every scope by default."
    )
    # Written at most once a minute (AUTH_LAST_SEEN_RESOLUTION_SECONDS), so accurate to that.
    last_used = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="apikeys_owner_created")]
        constraints = [
            # A constraint rather than unique=True, which on PostgreSQL would add a second,
            # useless varchar_pattern_ops index (for LIKE) beside the unique one.
            models.UniqueConstraint(fields=["key_hash"], name="apikeys_key_hash_unique"),
        ]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired
