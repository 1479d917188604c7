"""Service endpoints that belong to no app: health, API index, hello; and the API's JSON 404."""

from django.conf import settings
from django.http import JsonResponse
from django.views.defaults import page_not_found
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config import crypto, health


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


class HelloView(PublicAPIView):
    """Public greeting, for checking that the service answers."""

    @extend_schema(tags=["hello"], responses=inline_serializer("Hello", {"message": serializers.CharField()}))
    def get(self, request):
        return Response({"message": "Hello, World!"})


class ProtectedHelloView(APIView):
    """Greeting for an authenticated caller (JWT, API key or session)."""

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
