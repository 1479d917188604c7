"""Input validation and output shapes of the accounts endpoints."""

from django.conf import settings
from django.contrib.auth.validators import UnicodeUsernameValidator
from rest_framework import serializers

from accounts.models import AuthSession, SecurityEvent, User


def _password_field(**kwargs):
    # Passwords are taken verbatim: no trimming, no silent truncation (Argon2 has no 72-byte limit).
    return serializers.CharField(
        write_only=True,
        trim_whitespace=False,
        max_length=settings.PASSWORD_MAX_LENGTH,
        style={"input_type": "password"},
        **kwargs,
    )


class RegisterSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    email = serializers.EmailField(max_length=254)
    password = _password_field()
    name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")


class RegisteredUserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "email", "name", "date_joined"]


class MeSerializer(serializers.ModelSerializer):
    is_admin = serializers.BooleanField(source="is_staff", read_only=True)

    class Meta:
        model = User
        fields = ["id", "username", "email", "name", "is_admin", "date_joined", "last_login", "email_verified"]
        fields += ["pending_email"]
        read_only_fields = fields


class MeUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    email = serializers.EmailField(
        max_length=254,
        required=False,
        help_text="A new address becomes `pending_email` and takes effect once verified (needs a recent login).",
    )


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=254, required=False, help_text="Username or email address.")
    username_or_email = serializers.CharField(max_length=254, required=False, help_text="Alias of `username`.")
    password = _password_field()

    def validate(self, attrs):
        identifier = attrs.get("username") or attrs.get("username_or_email")
        if not identifier:
            raise serializers.ValidationError({"username": ["This field is required."]})
        return {"username": identifier, "password": attrs["password"]}


class OAuth2PasswordSerializer(serializers.Serializer):
    """The OAuth2 password grant (RFC 6749 §4.3), as Swagger UI and OAuth2 clients send it."""

    grant_type = serializers.ChoiceField(choices=["password"], required=False)
    username = serializers.CharField(max_length=254)
    password = _password_field()
    scope = serializers.CharField(required=False, allow_blank=True)


class TokenPairSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    refresh_token = serializers.CharField()
    token_type = serializers.CharField()
    expires_in = serializers.IntegerField(help_text="Lifetime of the access token, in seconds.")

    def to_representation(self, pair):
        return {
            "access_token": str(pair.access),
            "refresh_token": str(pair.refresh),
            "token_type": "bearer",
            "expires_in": pair.expires_in,
        }


class RefreshSerializer(serializers.Serializer):
    refresh_token = serializers.CharField(max_length=4096)


class LogoutSerializer(serializers.Serializer):
    refresh_token = serializers.CharField(max_length=4096, required=False, allow_blank=True)


class PasswordChangeSerializer(serializers.Serializer):
    current_password = _password_field()
    new_password = _password_field()


class ValidateResponseSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    user_id = serializers.IntegerField()
    username = serializers.CharField()
    auth = serializers.ChoiceField(choices=["jwt", "api_key"])
    expires_at = serializers.DateTimeField(allow_null=True)


class SessionSerializer(serializers.ModelSerializer):
    current = serializers.SerializerMethodField()

    class Meta:
        model = AuthSession
        fields = ["id", "created_at", "last_seen", "user_agent", "ip_address", "current"]

    def get_current(self, session) -> bool:
        return str(session.pk) == self.context.get("current_session_id")


class AdminUserSerializer(serializers.ModelSerializer):
    is_admin = serializers.BooleanField(source="is_staff", read_only=True)

    class Meta:
        model = User
        fields = ["id", "username", "email", "name", "is_active", "is_admin", "date_joined", "last_login"]
        read_only_fields = fields


class AdminUserUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    email = serializers.EmailField(max_length=254, required=False)
    is_active = serializers.BooleanField(required=False)
    is_admin = serializers.BooleanField(required=False)


class SecurityEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = SecurityEvent
        fields = ["id", "type", "created_at", "ip_address", "user_agent", "detail"]
        read_only_fields = fields


class ReauthSerializer(serializers.Serializer):
    password = serializers.CharField(trim_whitespace=False, max_length=4096)


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


class PasswordResetRequestSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)


class PasswordResetConfirmSerializer(serializers.Serializer):
    uid = serializers.CharField(max_length=64)
    token = serializers.CharField(max_length=256)
    new_password = _password_field()


class EmailVerifySerializer(serializers.Serializer):
    uid = serializers.CharField(max_length=64)
    token = serializers.CharField(max_length=256)
