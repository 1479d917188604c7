"""Admin screens for users, login sessions and security events; actions call the same services as the API.

The admin's login form is this module's too (`admin.site.login_form`): it counts against the API
login's throttles and asks staff with two-factor on for their code.
"""

from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, AdminUserCreationForm, UserChangeForm

from accounts import services
from accounts.forms import LoginForm
from accounts.models import AuthSession, SecurityEvent, TOTPDevice, User


class AdminLoginForm(LoginForm, AdminAuthenticationForm):
    """The admin login: the browsable API's form (throttled like POST /auth/login, a code for two-factor) for
    staff only. A wrong or missing code gets the same message as a wrong password."""

    error_messages = {
        **LoginForm.error_messages,
        "invalid_login": (
            "Please enter the correct %(username)s and password for a staff account, and your two-factor code "
            "if two-factor authentication is on. Note that the fields may be case-sensitive."
        ),
    }
    requires_verified_email = False
    login_during = "admin_login"


# Public attributes of AdminSite: the form above, and Django's login page with the code field added.
admin.site.login_form = AdminLoginForm
admin.site.login_template = "admin/accounts/login.html"


class UserCreationForm(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("username", "email")


class UserEditForm(UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User


class PasswordSetForm(AdminPasswordChangeForm):
    """An admin setting a password ends every session of the user, as a password change does."""

    def save(self, commit=True):
        user = super().save(commit=commit)
        if commit:
            services.auth_sessions_revoke_all(user=user, reason="password_set_by_admin")
        return user


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserEditForm
    add_form = UserCreationForm
    change_password_form = PasswordSetForm
    list_display = (
        *("username", "email", "email_verified", "name", "is_active", "is_staff", "mfa_enabled"),
        *("date_joined", "last_login"),
    )
    list_filter = ("is_active", "is_staff", "is_superuser", "email_verified", "mfa_enabled", "date_joined")
    search_fields = ("username", "email", "name")
    ordering = ("-date_joined",)
    # Verification is the owner's proof (a link followed), so an admin sees it but does not set it.
    readonly_fields = (
        *("date_joined", "last_login", "tokens_valid_after", "email_verified", "pending_email"),
        "two_factor_state",
    )
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Profile", {"fields": ("name", "email", "email_verified", "pending_email")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Two-factor", {"fields": ("two_factor_state",)}),
        ("Dates", {"fields": ("date_joined", "last_login", "tokens_valid_after")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("username", "email", "password1", "password2")}),)
    actions = ["deactivate_and_revoke", "reset_two_factor"]

    @admin.display(description="Two-factor authentication")
    def two_factor_state(self, obj):
        device = TOTPDevice.objects.filter(user=obj).first() if obj.pk else None
        if device is None:
            return "Off"
        if device.confirmed_at is None:
            return "Off (set up, never confirmed)"
        remaining = obj.recovery_codes.filter(used_at__isnull=True).count()
        return f"On since {device.confirmed_at:%Y-%m-%d %H:%M} UTC; {remaining} unused recovery code(s)"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        # Deactivation from the edit form must end the sessions exactly as the API does.
        if change and "is_active" in form.changed_data and not obj.is_active:
            services.user_deactivate(user=obj)

    @admin.action(description="Deactivate selected users and revoke their sessions")
    def deactivate_and_revoke(self, request, queryset):
        for user in queryset:
            services.user_deactivate(user=user)
        self.message_user(
            request, f"Deactivated {len(queryset)} user(s); their tokens no longer work.", messages.SUCCESS
        )

    @admin.action(description="Reset two-factor of selected users (remove their authenticator and recovery codes)")
    def reset_two_factor(self, request, queryset):
        reset = sum(services.mfa_reset_by_admin(user=user, by=request.user) for user in queryset)
        self.message_user(
            request,
            f"Two-factor reset for {reset} user(s); {len(queryset) - reset} selected had it off. "
            "They log in with their password alone until they set it up again.",
            messages.SUCCESS,
        )


@admin.register(AuthSession)
class AuthSessionAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "created_at", "last_seen", "expires_at", "ip_address", "revoked_at", "revoked_reason")
    list_filter = ("revoked_reason", ("revoked_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("user__username", "user__email", "ip_address")
    list_select_related = ("user",)
    readonly_fields = [field.name for field in AuthSession._meta.fields]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # sessions are opened by logging in

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke selected sessions")
    def revoke(self, request, queryset):
        for session in queryset:
            services.auth_session_revoke(session=session, reason="revoked_by_admin")
        self.message_user(request, f"Revoked {len(queryset)} session(s).", messages.SUCCESS)


@admin.register(SecurityEvent)
class SecurityEventAdmin(admin.ModelAdmin):
    """Every account's security events, read-only: written by accounts.services.security_event_record only."""

    list_display = ["created_at", "type", "user", "ip_address", "user_agent"]
    list_filter = ["type", "created_at"]
    list_select_related = ["user"]
    search_fields = ["user__username__iexact", "ip_address"]
    search_help_text = "The user's exact username, or an address."
    raw_id_fields = ["user"]
    ordering = ["-created_at", "-id"]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in SecurityEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
