import datetime
import uuid

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.crypto import salted_hmac

# Django's hash of a cookie session's user (see User.get_session_auth_hash), with the logout-all cut-off in it.
SESSION_AUTH_HASH_SALT = "gatehouse.accounts.User.get_session_auth_hash"


class UserManager(BaseUserManager):
    """Creates users; looks them up by username regardless of case."""

    use_in_migrations = True

    def get_by_natural_key(self, username):
        return self.get(username__iexact=username)

    def _create(self, username, email, password, **extra_fields):
        if not username:
            raise ValueError("A username is required.")
        user = self.model(username=username, email=self.normalize_email(email), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, username, email="", password=None, **extra_fields):
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create(username, email, password, **extra_fields)

    def create_superuser(self, username, email="", password=None, **extra_fields):
        extra_fields.update(is_staff=True, is_superuser=True)
        return self._create(username, email, password, **extra_fields)


class User(AbstractBaseUser, PermissionsMixin):
    """An account. Username and email are unique regardless of case."""

    username = models.CharField(
        max_length=150,
        validators=[UnicodeUsernameValidator()],
        help_text="Letters, digits and @/./+/-/_ only. Unique regardless of case.",
    )
    email = models.EmailField(max_length=254, blank=True)
    # The owner proved the address is theirs (followed a verification or reset link mailed to it).
    email_verified = models.BooleanField(default=False)
    # Whether this account holds its address exclusively (the unique constraint below). Under
    # ACCOUNT_EMAIL_VERIFICATION=optional an address is claimed at registration, as it always was; under
    # mandatory only by verifying it, so registering someone else's address first claims nothing.
    email_claimed = models.BooleanField(default=True)
    # An address the owner asked to change to: it replaces `email` once verified (a link mailed to it).
    pending_email = models.EmailField(max_length=254, blank=True)
    name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Admins may use the admin site and the users API.")
    date_joined = models.DateTimeField(default=timezone.now)
    # Tokens issued before this instant are rejected whatever their session says.
    tokens_valid_after = models.DateTimeField(default=timezone.now)
    # Two-factor is on (a confirmed TOTPDevice): kept on the row so that login, `me` and the cached session
    # know it without a query. Written only by accounts.services, in the transaction that confirms or
    # removes the device.
    mfa_enabled = models.BooleanField(default=False, editable=False, verbose_name="two-factor")

    objects = UserManager()

    USERNAME_FIELD = "username"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["email"]

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("username"), name="accounts_user_username_ci_unique"),
            # One schema for both verification modes: only claimed addresses collide (see email_claimed).
            # Empty emails (users created from the CLI without one) do not collide.
            models.UniqueConstraint(
                Lower("email"),
                name="accounts_user_claimed_email_ci_unique",
                condition=models.Q(email_claimed=True) & ~models.Q(email=""),
            ),
        ]

    def __str__(self):
        return self.username

    @property
    def is_admin(self) -> bool:
        return self.is_staff

    # Django keeps this hash in every cookie session (the admin, the browsable API) and ends a session whose
    # hash no longer matches the user's on its next request. Its own is an HMAC of the password alone, so
    # logout-all, which moves tokens_valid_after but not the password, would leave cookie sessions open:
    # the cut-off goes into the hash too. It works with any session engine and costs no query or scan of
    # the session table. (Deploying this changes every hash once: cookie sessions log in again.)
    def get_session_auth_hash(self):
        return self._session_auth_hmac(secret=None)

    def get_session_auth_fallback_hash(self):
        for secret in settings.SECRET_KEY_FALLBACKS:
            yield self._session_auth_hmac(secret=secret)

    def _session_auth_hmac(self, *, secret):
        cut_off = self.tokens_valid_after.astimezone(datetime.UTC).isoformat()
        return salted_hmac(
            SESSION_AUTH_HASH_SALT, f"{self.password}:{cut_off}", secret=secret, algorithm="sha256"
        ).hexdigest()


class AuthSession(models.Model):
    """One login: every access and refresh token it issues carries its id and dies with it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="auth_sessions")
    created_at = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    # Moves forward with each refresh; after it, no token of the session is valid.
    expires_at = models.DateTimeField()
    user_agent = models.CharField(max_length=512, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=64, blank=True)
    # When the user last proved who they are in this session (the login, or POST /auth/reauth): sensitive
    # actions need it within REAUTH_WINDOW_MINUTES (accounts.permissions.RecentAuthentication).
    authenticated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["user", "revoked_at", "expires_at"], name="accounts_session_user_active")]
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.user} session {self.id}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()


class RefreshTokenRecord(models.Model):
    """A refresh token issued for a session, by its `jti` only; the raw token is never stored."""

    jti = models.CharField(max_length=64, unique=True)
    session = models.ForeignKey(AuthSession, on_delete=models.CASCADE, related_name="refresh_tokens")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    # Set once, atomically, when the token is exchanged; a second use is theft.
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return self.jti


class SecurityEventType(models.TextChoices):
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    MFA_FAILED = "mfa_failed"
    LOGOUT = "logout"
    LOGOUT_ALL = "logout_all"
    REFRESH_REUSE = "refresh_reuse"
    PASSWORD_CHANGE = "password_change"
    PASSWORD_RESET = "password_reset"
    EMAIL_CHANGE = "email_change"
    EMAIL_VERIFIED = "email_verified"
    MFA_ENABLED = "mfa_enabled"
    MFA_DISABLED = "mfa_disabled"
    API_KEY_CREATED = "api_key_created"
    API_KEY_REVOKED = "api_key_revoked"
    SESSION_REVOKED = "session_revoked"
    PROVIDER_KEY_CREATED = "provider_key_created"
    PROVIDER_KEY_DELETED = "provider_key_deleted"
    ADMIN_CHANGE = "admin_change", "Changed by an admin"


class SecurityEvent(models.Model):
    """Something that happened to an account's security, for its owner (GET /auth/events) and admins.

    Written only by accounts.services.security_event_record, which every app calls; ``detail`` never
    holds a password, token, key or code (the service refuses such fields)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="security_events", db_index=False)
    type = models.CharField(max_length=32, choices=SecurityEventType.choices)
    created_at = models.DateTimeField(default=timezone.now)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at", "-id"], name="accounts_event_user_newest")]

    def __str__(self):
        return f"{self.type} of {self.user_id} at {self.created_at:%Y-%m-%d %H:%M:%S}"


# TWO-FACTOR (accounts/mfa.py has the formats, accounts.services the rules)
# ------------------------------------------------------------------------------


class TOTPDevice(models.Model):
    """A user's TOTP authenticator (RFC 6238); two-factor is on once it is confirmed. The secret is stored sealed."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="totp_device")
    # The secret's envelope (config.crypto.Sealed), bound to the user by its associated data, so a sealed
    # secret copied onto another user's row does not open.
    kid = models.CharField(max_length=32)
    wrapped_key = models.BinaryField()
    nonce = models.BinaryField()
    ciphertext = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now)
    # Null while set up but not yet confirmed with a first code: two-factor is not on yet.
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # The RFC 6238 time step of the last code accepted: a code of this step or an earlier one is a replay.
    # Moved forward only by a conditional UPDATE, so two requests with one code cannot both win.
    last_used_step = models.BigIntegerField(null=True, blank=True)

    class Meta:
        verbose_name = "TOTP device"
        # Re-sealing after an RSA key rotation finds the rows still wrapped by an older key.
        indexes = [models.Index(fields=["kid"], name="accounts_totp_kid_idx")]

    def __str__(self):
        return f"TOTP of {self.user_id} ({'on' if self.confirmed_at else 'pending'})"


class RecoveryCode(models.Model):
    """A single-use two-factor recovery code, by its hash only (accounts.mfa.recovery_code_hash)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="recovery_codes", db_index=False)
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    # Set once, by a conditional UPDATE: a used code never works again.
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "code_hash"], name="accounts_recovery_code_unique")]

    def __str__(self):
        return f"recovery code {self.pk} of {self.user_id}"


class MFAChallenge(models.Model):
    """A password login waiting for its second factor: the mfa_token by its SHA-256 only; short-lived, single use,
    and dead after a few wrong codes."""

    token_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="mfa_challenges", db_index=False)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "MFA login challenge"
        indexes = [models.Index(fields=["user", "created_at"], name="accounts_mfachallenge_user")]

    def __str__(self):
        return f"mfa challenge {self.pk} of {self.user_id}"
