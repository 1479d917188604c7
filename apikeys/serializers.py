"""Input validation and output shapes of the API key endpoints. No key hash ever leaves through these."""

from rest_framework import serializers

from apikeys import keys
from apikeys.models import EXPIRES_DAYS_MAX, EXPIRES_DAYS_MIN, NAME_MAX_LENGTH, APIKey


class APIKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=NAME_MAX_LENGTH, help_text="A label to recognise the key by.")
    expires_days = serializers.IntegerField(
        min_value=EXPIRES_DAYS_MIN,
        max_value=EXPIRES_DAYS_MAX,
        allow_null=True,
        required=False,
        default=None,
        help_text="Days until the key expires (1..3650); null or absent for a key that does not expire.",
    )


class APIKeySerializer(serializers.ModelSerializer):
    """A key as lists and details show it: never the key, never its hash."""

    is_active = serializers.BooleanField(read_only=True, help_text="Not revoked and not expired.")
    last_used = serializers.DateTimeField(read_only=True, allow_null=True, help_text="Accurate to within a minute.")

    class Meta:
        model = APIKey
        fields = [
            "id",
            "name",
            "prefix",
            "is_active",
            "created_at",
            "last_used",
            "expires_at",
            "revoked_at",
            "last_used_ip",
        ]
        read_only_fields = fields


class APIKeyCreatedSerializer(serializers.ModelSerializer):
    """The creation response: the only place the plaintext key ever appears."""

    api_key = serializers.SerializerMethodField(help_text=f"The key itself, shown this once. Matches {keys.KEY_REGEX}.")

    class Meta:
        model = APIKey
        fields = ["id", "name", "api_key", "prefix", "created_at", "expires_at"]
        read_only_fields = fields

    def get_api_key(self, key) -> str:
        return self.context["plaintext"]
