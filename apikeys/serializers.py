"""Input validation and output shapes of the API key endpoints. No key hash ever leaves through these."""

from rest_framework import serializers

from apikeys import keys
from apikeys.models import EXPIRES_DAYS_MAX, EXPIRES_DAYS_MIN, NAME_MAX_LENGTH, APIKey
from config import scopes as scope_names

SCOPE_LIST = ", ".join(scope_names.ALL_SCOPES)


def _scopes_output():
    return serializers.ListField(
        child=serializers.ChoiceField(choices=scope_names.ALL_SCOPES), read_only=True, help_text="What the key may do."
    )


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
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=scope_names.ALL_SCOPES),
        allow_empty=False,
        required=False,
        help_text=f"What the key may do, at least one scope of {SCOPE_LIST}. Absent: every scope.",
    )

    def validate_scopes(self, value):
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Each scope may appear only once.")
        return value


class APIKeySerializer(serializers.ModelSerializer):
    """A key as lists and details show it: never the key, never its hash."""

    is_active = serializers.BooleanField(read_only=True, help_text="Not revoked and not expired.")
    last_used = serializers.DateTimeField(read_only=True, allow_null=True, help_text="Accurate to within a minute.")
    scopes = _scopes_output()

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
            "scopes",
        ]
        read_only_fields = fields


class APIKeyCreatedSerializer(serializers.ModelSerializer):
    """The creation response: the only place the plaintext key ever appears."""

    api_key = serializers.SerializerMethodField(help_text=f"The key itself, shown this once. Matches {keys.KEY_REGEX}.")
    scopes = _scopes_output()

    class Meta:
        model = APIKey
        fields = ["id", "name", "api_key", "prefix", "created_at", "expires_at", "scopes"]
        read_only_fields = fields

    def get_api_key(self, key) -> str:
        return self.context["plaintext"]
