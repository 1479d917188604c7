"""Accounts endpoints: thin views over accounts.services and accounts.selectors."""

import uuid

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.urls import reverse_lazy
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import FormParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.forms import LoginForm
from accounts.models import SecurityEventType
from accounts.permissions import HasCredential, HasJWT, IsAdmin, RecentAuthentication
from accounts.serializers import (
    AdminUserSerializer,
    AdminUserUpdateSerializer,
    DetailSerializer,
    EmailVerifySerializer,
    LoginMFASerializer,
    LoginSerializer,
    LogoutSerializer,
    MeSerializer,
    MeUpdateSerializer,
    MFACodeSerializer,
    MFARequiredSerializer,
    OAuth2PasswordSerializer,
    PasswordChangeSerializer,
    PasswordResetConfirmSerializer,
    PasswordResetRequestSerializer,
    ReauthSerializer,
    RecoveryCodesSerializer,
    RefreshSerializer,
    RegisteredUserSerializer,
    RegisterSerializer,
    SecurityEventSerializer,
    SessionSerializer,
    TokenPairSerializer,
    TOTPSetupSerializer,
    ValidateResponseSerializer,
)
from accounts.throttling import (
    AccountRateThrottle,
    AddressRateThrottle,
    EmailRateThrottle,
    MFAAccountRateThrottle,
    UsernameRateThrottle,
)
from accounts.tokens import SessionAccessToken, token_backend
from config import scopes
from config.parsers import SafeJSONParser
from config.permissions import APIKeyScope
from config.requests import client_ip
from config.views import PublicAPIView
from config.viewsets import APIViewSet, RespondMixin, validated

AUTH_TAG = ["auth"]


class _CredentialEndpoint(PublicAPIView):
    throttle_classes = [AddressRateThrottle, UsernameRateThrottle]


class _PasswordLogin(PublicAPIView):
    # Failed passwords are counted per account by the authentication backend (accounts/throttling.py).
    throttle_classes = [AddressRateThrottle]


@extend_schema(tags=AUTH_TAG)
class RegisterView(_CredentialEndpoint):
    """Create an account. Usernames and emails are unique regardless of case."""

    throttle_scope = "register"

    @extend_schema(
        request=RegisterSerializer,
        responses={
            201: RegisteredUserSerializer,
            400: OpenApiResponse(description="Invalid or weak password"),
            409: OpenApiResponse(description="Username or email taken"),
        },
        auth=[],
    )
    def post(self, request):
        user = services.user_register(
            **validated(RegisterSerializer, request.data), origin=services.request_origin(request)
        )
        return Response(RegisteredUserSerializer(user).data, status=status.HTTP_201_CREATED)


# Responses that carry a secret (a TOTP secret, recovery codes) must not be kept by any cache.
NO_STORE = {"Cache-Control": "no-store"}


def _client(request) -> dict:
    return {"user_agent": request.META.get("HTTP_USER_AGENT", ""), "ip_address": client_ip(request)}


# COOKIE MODE: the refresh token of a browser app, out of the reach of its scripts (README "Cookie mode").
# __Secure-: a browser takes it only from a secure origin, so a plain-HTTP page cannot plant one. Scoped to the
# auth endpoints (refresh and logout read it), never sent with the rest of the API.
REFRESH_COOKIE = "__Secure-gatehouse-refresh"
REFRESH_COOKIE_PATH = "/api/v1/auth/"


def _tokens_response(pair: services.TokenPair, *, cookie: bool) -> Response:
    body = TokenPairSerializer(pair).data
    if not cookie:
        return Response(body)
    refresh = body.pop("refresh_token")
    response = Response(body, headers=NO_STORE)
    response.set_cookie(
        REFRESH_COOKIE,
        refresh,
        max_age=int(settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"].total_seconds()),
        path=REFRESH_COOKIE_PATH,
        secure=True,
        httponly=True,
        samesite="Strict",
    )
    return response


def _origin_is_trusted(request) -> bool:
    """CSRF defence of a refresh by cookie: the page that asks is this server's or one of CORS_ALLOWED_ORIGINS.
    SameSite=Strict keeps other sites out, but not a sibling origin of the same site (another subdomain);
    browsers send Origin with every POST, so a request without one is not a browser app of ours either."""
    origin = request.headers.get("Origin", "").lower()
    if not origin:
        return False
    own = f"{request.scheme}://{request.get_host()}".lower()
    return origin == own or origin in {allowed.lower() for allowed in settings.CORS_ALLOWED_ORIGINS}


def _login(request, *, username: str, password: str, allow_second_step: bool = True, cookie: bool = False) -> Response:
    outcome = services.auth_login(
        username=username, password=password, request=request, allow_second_step=allow_second_step, **_client(request)
    )
    if isinstance(outcome, services.MFAChallengeIssued):
        return Response(MFARequiredSerializer(outcome).data, headers=NO_STORE)
    return _tokens_response(outcome, cookie=cookie)


@extend_schema(tags=AUTH_TAG)
class LoginView(_PasswordLogin):
    """Log in with a username (or email) and password; JSON or form-encoded. When two-factor is on, the answer
    is an mfa_token (no tokens yet) for POST /auth/login/mfa."""

    throttle_scope = "login"

    @extend_schema(
        request=LoginSerializer,
        responses={
            200: PolymorphicProxySerializer(
                component_name="LoginResponse",
                serializers=[TokenPairSerializer, MFARequiredSerializer],
                resource_type_field_name=None,
            ),
            401: OpenApiResponse(description="Incorrect username or password"),
            429: OpenApiResponse(description="Too many attempts from this address, or failures for this account"),
        },
        auth=[],
    )
    def post(self, request):
        return _login(request, **validated(LoginSerializer, request.data))


@extend_schema(tags=AUTH_TAG)
class OAuth2TokenView(_PasswordLogin):
    """OAuth2 password grant (form-encoded), as used by Swagger UI's Authorize dialog. Accounts with two-factor
    on get a 401 telling them to use POST /auth/login (the grant has no second step)."""

    throttle_scope = "login"
    parser_classes = [FormParser, SafeJSONParser]

    @extend_schema(
        request={"application/x-www-form-urlencoded": OAuth2PasswordSerializer},
        responses={
            200: TokenPairSerializer,
            401: OpenApiResponse(description="Incorrect username or password, or two-factor is on: use /auth/login"),
        },
        auth=[],
    )
    def post(self, request):
        form = validated(OAuth2PasswordSerializer, request.data)
        return _login(request, username=form["username"], password=form["password"], allow_second_step=False)


@extend_schema(tags=AUTH_TAG)
class LoginMFAView(PublicAPIView):
    """The second step of a two-factor login: the mfa_token from POST /auth/login and a TOTP or recovery code."""

    throttle_classes = [AddressRateThrottle, MFAAccountRateThrottle]
    throttle_scope = "login"

    @extend_schema(
        request=LoginMFASerializer,
        responses={
            200: TokenPairSerializer,
            401: OpenApiResponse(description="Wrong code, or the mfa_token is invalid, expired or used up"),
        },
        auth=[],
    )
    def post(self, request):
        data = validated(LoginMFASerializer, request.data)
        cookie = data.pop("cookie")
        pair = services.auth_login_mfa(**data, **_client(request))
        return _tokens_response(pair, cookie=cookie)


@extend_schema(tags=AUTH_TAG)
class RefreshView(_CredentialEndpoint):
    """Exchange a refresh token for a new pair; the old refresh token stops working. With no refresh_token in
    the body, the cookie of cookie mode is used (and renewed), from a trusted Origin only."""

    throttle_scope = "refresh"

    @extend_schema(
        request=RefreshSerializer,
        responses={
            200: TokenPairSerializer,
            401: OpenApiResponse(description="The refresh token is invalid, expired, already used or revoked"),
            403: OpenApiResponse(description="Refresh by cookie from an Origin that is not trusted"),
        },
        auth=[],
    )
    def post(self, request):
        body = validated(RefreshSerializer, request.data)
        if "refresh_token" in body:
            return _tokens_response(services.auth_refresh(refresh_token=body["refresh_token"]), cookie=False)
        from_cookie = request.COOKIES.get(REFRESH_COOKIE)
        if not from_cookie:
            raise ValidationError({"refresh_token": ["This field is required."]})
        if not _origin_is_trusted(request):
            raise PermissionDenied("A refresh by cookie needs an Origin of this server or of CORS_ALLOWED_ORIGINS.")
        return _tokens_response(services.auth_refresh(refresh_token=from_cookie), cookie=True)


_JWKS = OpenApiResponse(
    description='RFC 7517 JWK Set: `{"keys": [{"kty", "kid", "use": "sig", "alg", ...}]}`; '
    '`{"keys": []}` when tokens are signed with a shared secret (HS*).'
)


@extend_schema(tags=AUTH_TAG)
class JWKSView(PublicAPIView):
    """The public keys that verify Gatehouse's JWTs: each token's `kid` header names one of them."""

    renderer_classes = [JSONRenderer]  # a JWK Set is JSON for every client, browsers included

    @extend_schema(responses={200: _JWKS}, auth=[])
    def get(self, request):
        return Response(token_backend().jwks())


class _SessionAction(APIView):
    """A POST about the caller's JWT session that answers 204: the subclass validates its body and acts on it."""

    permission_classes = [IsAuthenticated, HasJWT]
    input_serializer_class = None  # None: the body is not read

    def act(self, request, **data) -> None:
        raise NotImplementedError

    def post(self, request):
        data = validated(self.input_serializer_class, request.data) if self.input_serializer_class else {}
        self.act(request, **data)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=AUTH_TAG, request=LogoutSerializer, responses={204: None})
class LogoutView(_SessionAction):
    """End the calling session: its access and refresh tokens are rejected from now on."""

    input_serializer_class = LogoutSerializer

    def act(self, request, refresh_token=None):
        # Cookie mode: the cookie's session ends too (it is the caller's, or the caller's other tab's).
        refresh_token = refresh_token or request.COOKIES.get(REFRESH_COOKIE)
        services.auth_logout(user=request.user, session_id=request.auth.session_id, refresh_token=refresh_token)

    def post(self, request):
        response = super().post(request)
        response.delete_cookie(REFRESH_COOKIE, path=REFRESH_COOKIE_PATH, samesite="Strict")
        return response


@extend_schema(tags=AUTH_TAG, request=None, responses={204: None})
class LogoutAllView(_SessionAction):
    """End every session of the caller: every token issued so far is rejected."""

    def act(self, request):
        services.auth_logout_all(user=request.user)


class _EmailChangeScope:
    throttle_scope = "email_change"  # counted only when a PATCH changes the email


@extend_schema(tags=AUTH_TAG)
class MeView(APIView):
    """The caller's account."""

    # Changing the profile is outside the scope vocabulary: only a key with every scope may.
    required_scopes = {"GET": scopes.PROFILE_READ, "PATCH": scopes.FULL_ACCESS}

    @extend_schema(responses=MeSerializer)
    def get(self, request):
        return Response(MeSerializer(request.user).data)

    @extend_schema(
        request=MeUpdateSerializer,
        responses={
            200: MeSerializer,
            403: OpenApiResponse(description="Changing the email needs a JWT and a recent authentication"),
            409: OpenApiResponse(description="Email taken"),
        },
    )
    def patch(self, request):
        changes = validated(MeUpdateSerializer, request.data, partial=True)
        if services.email_change_is_requested(user=request.user, email=changes.get("email")):
            # The address is how the account is recovered: only its owner, freshly proven, may move it.
            for permission in (HasJWT(), RecentAuthentication()):
                if not permission.has_permission(request, self):
                    self.permission_denied(request, message=getattr(permission, "message", None))
            throttle = AccountRateThrottle()
            if not throttle.allow_request(request, _EmailChangeScope):
                self.throttled(request, throttle.wait())
        user = services.user_profile_update(user=request.user, origin=services.request_origin(request), **changes)
        return Response(MeSerializer(user).data)


@extend_schema(tags=AUTH_TAG)
class ValidateView(APIView):
    """Check the credential this request carries, and tell whose it is and until when it is valid."""

    permission_classes = [IsAuthenticated, HasCredential, APIKeyScope]
    required_scopes = {"POST": scopes.NO_SCOPE}  # any key may ask whether it is valid

    @extend_schema(request=None, responses=ValidateResponseSerializer)
    def post(self, request):
        return Response(
            ValidateResponseSerializer(
                {
                    "valid": True,
                    "user_id": request.user.id,
                    "username": request.user.username,
                    "auth": request.auth.scheme,
                    "expires_at": request.auth.expires_at,
                }
            ).data
        )


@extend_schema(tags=AUTH_TAG, request=PasswordChangeSerializer, responses={204: None})
class PasswordChangeView(_SessionAction):
    """Change the password; every other session of the caller is revoked."""

    input_serializer_class = PasswordChangeSerializer
    throttle_classes = [AccountRateThrottle]
    throttle_scope = "password_change"

    def act(self, request, **passwords):
        services.user_password_change(user=request.user, keep_session_id=request.auth.session_id, **passwords)


@extend_schema(tags=AUTH_TAG)
class PasswordResetView(PublicAPIView):
    """Ask for a password reset link by email. The answer is the same whether or not the address has an account."""

    throttle_classes = [AddressRateThrottle, EmailRateThrottle]
    throttle_scope = "password_reset"

    @extend_schema(
        request=PasswordResetRequestSerializer,
        responses={202: DetailSerializer, 400: OpenApiResponse(description="Malformed email")},
        auth=[],
    )
    def post(self, request):
        email = validated(PasswordResetRequestSerializer, request.data)["email"]
        services.password_reset_request(email=email, origin=services.request_origin(request))
        return Response({"detail": services.RESET_REQUESTED}, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=AUTH_TAG)
class PasswordResetConfirmView(PublicAPIView):
    """Set a new password with the uid and token of a reset link: every session and older API key is revoked."""

    @extend_schema(
        request=PasswordResetConfirmSerializer,
        responses={204: None, 400: OpenApiResponse(description="Invalid, used or expired link; weak password")},
        auth=[],
    )
    def post(self, request):
        services.password_reset_confirm(
            **validated(PasswordResetConfirmSerializer, request.data), ip_address=client_ip(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=AUTH_TAG)
class EmailVerifyView(PublicAPIView):
    """Verify an address with the uid and token of a verification link (a pending email change takes effect)."""

    @extend_schema(
        request=EmailVerifySerializer,
        responses={204: None, 400: OpenApiResponse(description="Invalid or expired link, or address taken")},
        auth=[],
    )
    def post(self, request):
        services.email_verify(**validated(EmailVerifySerializer, request.data))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=AUTH_TAG)
class EmailVerifyResendView(APIView):
    """Send the verification link again (to the pending address if a change is waiting)."""

    permission_classes = [IsAuthenticated, HasJWT]
    throttle_classes = [AccountRateThrottle]
    throttle_scope = "verify_resend"

    @extend_schema(request=None, responses={202: DetailSerializer, 429: OpenApiResponse(description="Too many")})
    def post(self, request):
        queued = services.email_verification_send(user=request.user, origin=services.request_origin(request))
        detail = "A verification link is on its way." if queued else "Your email address is already verified."
        return Response({"detail": detail}, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=AUTH_TAG)
class SessionViewSet(mixins.ListModelMixin, APIViewSet):
    """The caller's active login sessions; deleting one revokes its tokens."""

    serializer_class = SessionSerializer
    permission_classes = [IsAuthenticated, HasJWT]
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"  # session ids are UUIDs, not the base's bigints

    def caller_queryset(self, user, **filters):
        return selectors.auth_session_active_list(user=user)

    def is_valid_lookup(self, value):
        try:
            uuid.UUID(value)
        except ValueError:
            return False
        return True

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if isinstance(self.request.auth, SessionAccessToken):
            context["current_session_id"] = self.request.auth.session_id
        return context

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        services.auth_session_revoke_by_owner(session=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=AUTH_TAG)
class SecurityEventViewSet(mixins.ListModelMixin, APIViewSet):
    """What happened to your account's security, newest first: logins, password changes, keys created..."""

    serializer_class = SecurityEventSerializer
    permission_classes = [IsAuthenticated, HasJWT]

    def caller_queryset(self, user, **filters):
        return selectors.security_event_list(user=user)


@extend_schema(
    tags=AUTH_TAG,
    request=ReauthSerializer,
    responses={204: None, 401: OpenApiResponse(description="Incorrect password")},
)
class ReauthView(_SessionAction):
    """Prove who you are again: sensitive actions (creating API keys and provider keys...) are allowed in
    this session for the next REAUTH_WINDOW_MINUTES. A login counts as one too."""

    input_serializer_class = ReauthSerializer
    # Per address as a login, and per account (a stolen access token must not buy unlimited password
    # guesses from many addresses): "login_user", THROTTLE_REAUTH_RATE.
    throttle_scope = "login"
    throttle_classes = [AddressRateThrottle, AccountRateThrottle, MFAAccountRateThrottle]

    def act(self, request, password, code=""):
        services.auth_reauth(user=request.user, session_id=request.auth.session_id, password=password, code=code)


# TWO-FACTOR
# ------------------------------------------------------------------------------


class _MFAEndpoint(APIView):
    """The caller's two-factor setup: JWT only; the endpoints that take a code share the per-account code budget."""

    permission_classes = [IsAuthenticated, HasJWT]
    throttle_classes = [MFAAccountRateThrottle]


@extend_schema(tags=AUTH_TAG)
class TOTPSetupView(_MFAEndpoint):
    """Start two-factor: a new TOTP secret for the authenticator app; not on until confirmed with a code."""

    @extend_schema(
        request=None,
        responses={200: TOTPSetupSerializer, 409: OpenApiResponse(description="Two-factor is already on")},
    )
    def post(self, request):
        setup = services.mfa_totp_setup(user=request.user)
        return Response(TOTPSetupSerializer(setup).data, headers=NO_STORE)


@extend_schema(tags=AUTH_TAG)
class TOTPConfirmView(_MFAEndpoint):
    """Turn two-factor on with a first code; answers the ten recovery codes, shown this once."""

    @extend_schema(
        request=MFACodeSerializer,
        responses={
            200: RecoveryCodesSerializer,
            400: OpenApiResponse(description="Wrong code, or no setup to confirm"),
            409: OpenApiResponse(description="Two-factor is already on"),
        },
    )
    def post(self, request):
        codes = services.mfa_totp_confirm(user=request.user, **validated(MFACodeSerializer, request.data))
        return Response(RecoveryCodesSerializer({"recovery_codes": codes}).data, headers=NO_STORE)


@extend_schema(tags=AUTH_TAG)
class TOTPView(_MFAEndpoint):
    """Turn two-factor off with a TOTP or recovery code; needs a recent authentication."""

    permission_classes = [IsAuthenticated, HasJWT, RecentAuthentication]

    @extend_schema(
        request=MFACodeSerializer,
        responses={204: None, 400: OpenApiResponse(description="Wrong code, or two-factor is not on")},
    )
    def delete(self, request):
        services.mfa_totp_disable(user=request.user, **validated(MFACodeSerializer, request.data))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=AUTH_TAG)
class RecoveryCodesView(_MFAEndpoint):
    """Ten new recovery codes (the old ones stop working), with a TOTP or recovery code; needs a recent
    authentication."""

    permission_classes = [IsAuthenticated, HasJWT, RecentAuthentication]

    @extend_schema(
        request=MFACodeSerializer,
        responses={
            200: RecoveryCodesSerializer,
            400: OpenApiResponse(description="Wrong code, or two-factor is not on"),
        },
    )
    def post(self, request):
        codes = services.mfa_recovery_codes_regenerate(user=request.user, **validated(MFACodeSerializer, request.data))
        return Response(RecoveryCodesSerializer({"recovery_codes": codes}).data, headers=NO_STORE)


@extend_schema(tags=["users"])
class UserAdminViewSet(RespondMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Admins list and manage accounts; deactivating one makes its tokens and keys fail at once."""

    serializer_class = AdminUserSerializer
    permission_classes = [IsAuthenticated, IsAdmin, APIKeyScope]
    # The user admin is outside the scope vocabulary: an admin's key with every scope, or a JWT.
    required_scopes = {"list": scopes.FULL_ACCESS, "retrieve": scopes.FULL_ACCESS, "partial_update": scopes.FULL_ACCESS}
    queryset = selectors.user_list()
    http_method_names = ["get", "patch", "head", "options"]

    @extend_schema(request=AdminUserUpdateSerializer, responses=AdminUserSerializer)
    def partial_update(self, request, pk=None):
        changes = dict(validated(AdminUserUpdateSerializer, request.data, partial=True))
        if "is_admin" in changes:
            changes["is_staff"] = changes.pop("is_admin")
        user = self.get_object()
        # A role change needs a person at the keyboard: a JWT of a recent login, not an API key or an old
        # token. Checked for superusers only: anyone else is refused by the service whatever they hold.
        if request.user.is_superuser and services.user_role_change_is_requested(
            user=user, is_staff=changes.get("is_staff")
        ):
            for permission in (HasJWT(), RecentAuthentication()):
                if not permission.has_permission(request, self):
                    self.permission_denied(request, message=getattr(permission, "message", None))
        return self.respond(services.user_update_by_admin(user=user, by=request.user, **changes))


# THE BROWSABLE API'S LOG-IN: Django's own login views, a session cookie (DRF's SessionAuthentication)
# ------------------------------------------------------------------------------
class BrowsableAPILoginView(auth_views.LoginView):
    """/api-auth/login/: any active user logs in with a session cookie to browse the API as themselves.

    The form is the admin's (accounts.forms.LoginForm): throttled like POST /auth/login, a two-factor code
    when two-factor is on, the email rule of ACCOUNT_EMAIL_VERIFICATION. `next` is followed only to this
    host (Django's check), else the API root. A success is a `login` event, as the API's login is."""

    form_class = LoginForm
    template_name = "accounts/api_auth_login.html"
    next_page = reverse_lazy("api-root")

    def form_valid(self, form):
        response = super().form_valid(form)
        services.security_event_record(user=form.get_user(), type=SecurityEventType.LOGIN, detail={"via": "api-auth"})
        return response


class BrowsableAPILogoutView(auth_views.LogoutView):
    """/api-auth/logout/ (POST, with the CSRF token): ends the cookie session, a `logout` event."""

    next_page = reverse_lazy("api-root")

    def post(self, request, *args, **kwargs):
        user = request.user
        response = super().post(request, *args, **kwargs)
        if user.is_authenticated:
            services.security_event_record(user=user, type=SecurityEventType.LOGOUT, detail={"via": "api-auth"})
        return response
