"""Service endpoints that belong to no app: health, API index, hello; and the API's JSON 404."""

from django.conf import settings
from django.http import JsonResponse
from django.urls import reverse
from django.views.defaults import page_not_found
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config import crypto, health, scopes


def not_found(request, exception):
    """Django's 404 for a URL no route matches (`handler404`): JSON under /api/, Django's page elsewhere.

    An id that is not digits (/api/v1/tasks/abc) or a mistyped path then gets the same
    `{"detail": ...}` body as every other API error. With DEBUG on, Django shows its debug page instead.
    """
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return page_not_found(request, exception)


class PublicAPIView(APIView):
    """A public endpoint: no authentication is attempted, so a stale token cannot make it fail."""

    authentication_classes = []
    permission_classes = [AllowAny]


_HEALTH = inline_serializer(
    "Health",
    {
        "status": serializers.ChoiceField(choices=["ok", "error"]),
        "checks": serializers.DictField(child=serializers.CharField(), help_text='{"database": "ok", ...}'),
    },
)
_LIVE = inline_serializer("Liveness", {"status": serializers.CharField()})
_INDEX = inline_serializer(
    "APIIndex", {"name": serializers.CharField(), "version": serializers.CharField(), "docs": serializers.URLField()}
)


_PUBLIC_KEY = inline_serializer(
    "PublicKey",
    {
        "kid": serializers.CharField(help_text="Send it back as `kid` with what you encrypt with this key."),
        "algorithm": serializers.ChoiceField(
            choices=[crypto.ALGORITHM], help_text="RSA-OAEP with SHA-256 for both OAEP and MGF1."
        ),
        "public_key": serializers.CharField(help_text="PEM, SubjectPublicKeyInfo (-----BEGIN PUBLIC KEY-----)."),
    },
)


class PublicKeyView(PublicAPIView):
    """The server's current RSA public key: encrypt secrets you send (a provider key) with it."""

    @extend_schema(tags=["crypto"], responses={200: _PUBLIC_KEY})
    def get(self, request):
        key = crypto.public_key()
        return Response({"kid": key.kid, "algorithm": key.algorithm, "public_key": key.pem})


class HealthView(PublicAPIView):
    """Readiness: 200 when the database, the cache and the broker answer, else 503 naming the failure."""

    @extend_schema(tags=["service"], responses={200: _HEALTH, 503: _HEALTH})
    def get(self, request):
        checks = health.run_checks()
        healthy = all(result == "ok" for result in checks.values())
        return Response(
            {"status": "ok" if healthy else "error", "checks": checks},
            status=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE,
        )


class LivenessView(PublicAPIView):
    """Liveness: 200 while the process serves requests; touches no dependency."""

    @extend_schema(tags=["service"], responses={200: _LIVE})
    def get(self, request):
        return Response({"status": "ok"})


class APIIndexView(PublicAPIView):
    """Name and version of the service, and where its documentation lives."""

    @extend_schema(tags=["service"], responses={200: _INDEX})
    def get(self, request):
        return Response(
            {
                "name": "Gatehouse",
                "version": settings.SPECTACULAR_SETTINGS["VERSION"],
                "docs": request.build_absolute_uri("/docs"),
            }
        )


# The API root's links, by URL name: every collection and top-level resource (not the per-object ones).
API_ROOT_LINKS = {
    "auth/register": "register",
    "auth/login": "login",
    "auth/me": "me",
    "auth/sessions": "session-list",
    "auth/events": "security-event-list",
    "auth/api-keys": "api-key-list",
    "users": "user-list",
    "posts": "post-list",
    "tasks": "task-list",
    "provider-keys": "provider-key-list",
    "crypto/public-key": "crypto-public-key",
    "hello": "hello",
    "schema": "schema",
}
_ROOT = inline_serializer("APIRoot", {name: serializers.URLField() for name in API_ROOT_LINKS})


class APIRootView(APIView):
    """The API root (/api/v1/): a link to each top-level endpoint, as a DRF router's root has. Open to all;
    in a browser it is the browsable API's way in, with the log-in link (/api-auth/login/)."""

    permission_classes = [AllowAny]

    @extend_schema(tags=["service"], responses={200: _ROOT})
    def get(self, request):
        return Response(
            {name: request.build_absolute_uri(reverse(url_name)) for name, url_name in API_ROOT_LINKS.items()}
        )


class HelloView(PublicAPIView):
    """Public greeting, for checking that the service answers."""

    @extend_schema(tags=["hello"], responses=inline_serializer("Hello", {"message": serializers.CharField()}))
    def get(self, request):
        return Response({"message": "Hello, World!"})


class ProtectedHelloView(APIView):
    """Greeting for an authenticated caller (JWT, API key or session)."""

    required_scopes = {"GET": scopes.NO_SCOPE}  # any key: it is how a client checks that its key works

    @extend_schema(
        tags=["hello"],
        responses=inline_serializer(
            "ProtectedHello",
            {
                "message": serializers.CharField(),
                "user_id": serializers.IntegerField(),
                "protected": serializers.BooleanField(),
            },
        ),
    )
    def get(self, request):
        return Response({"message": f"Hello, {request.user.username}!", "user_id": request.user.id, "protected": True})
