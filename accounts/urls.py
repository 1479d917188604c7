from django.urls import path
from rest_framework.routers import SimpleRouter

from accounts import views

router = SimpleRouter(trailing_slash=False)
router.register("auth/sessions", views.SessionViewSet, basename="session")
router.register("auth/events", views.SecurityEventViewSet, basename="security-event")
router.register("users", views.UserAdminViewSet, basename="user")

urlpatterns = [
    path("auth/register", views.RegisterView.as_view(), name="register"),
    path("auth/login", views.LoginView.as_view(), name="login"),
    path("auth/token", views.OAuth2TokenView.as_view(), name="token"),
    path("auth/refresh", views.RefreshView.as_view(), name="refresh"),
    path("auth/logout", views.LogoutView.as_view(), name="logout"),
    path("auth/logout-all", views.LogoutAllView.as_view(), name="logout-all"),
    path("auth/me", views.MeView.as_view(), name="me"),
    path("auth/validate", views.ValidateView.as_view(), name="validate"),
    path("auth/password/change", views.PasswordChangeView.as_view(), name="password-change"),
    path("auth/reauth", views.ReauthView.as_view(), name="reauth"),
    path("auth/password/reset", views.PasswordResetView.as_view(), name="password-reset"),
    path("auth/password/reset/confirm", views.PasswordResetConfirmView.as_view(), name="password-reset-confirm"),
    path("auth/email/verify", views.EmailVerifyView.as_view(), name="email-verify"),
    path("auth/email/verify/resend", views.EmailVerifyResendView.as_view(), name="email-verify-resend"),
    path("auth/login/mfa", views.LoginMFAView.as_view(), name="login-mfa"),
    path("auth/mfa/totp/setup", views.TOTPSetupView.as_view(), name="mfa-totp-setup"),
    path("auth/mfa/totp/confirm", views.TOTPConfirmView.as_view(), name="mfa-totp-confirm"),
    path("auth/mfa/totp", views.TOTPView.as_view(), name="mfa-totp"),
    path("auth/mfa/recovery-codes", views.RecoveryCodesView.as_view(), name="mfa-recovery-codes"),
    *router.urls,
]
