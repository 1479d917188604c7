"""API key endpoints: thin views over apikeys.services and apikeys.selectors."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from accounts.permissions import HasJWT
from apikeys import selectors, services
from apikeys.serializers import APIKeyCreatedSerializer, APIKeyCreateSerializer, APIKeySerializer

_NEEDS_JWT = OpenApiResponse(description="Authenticated with an API key or a session: this needs a JWT")


@extend_schema(tags=["api-keys"])
@extend_schema_view(
    list=extend_schema(summary="List your API keys (never the keys themselves)"),
    retrieve=extend_schema(summary="One of your API keys", responses={200: APIKeySerializer, 404: None}),
)
class APIKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's API keys. Creating and revoking need a JWT from a password login: a key cannot mint keys."""

    serializer_class = APIKeySerializer
    lookup_value_regex = "[0-9]+"

    def get_permissions(self):
        if self.action in ("create", "destroy"):
            return [IsAuthenticated(), HasJWT()]
        return [IsAuthenticated()]

    def get_queryset(self):
        # Scoped to the caller: another user's key is a 404, never a 403.
        return selectors.api_key_list(user=self.request.user)

    @extend_schema(
        summary="Create an API key (the key is in this response only)",
        request=APIKeyCreateSerializer,
        responses={
            201: APIKeyCreatedSerializer,
            400: OpenApiResponse(description="Invalid input or too many active keys"),
            403: _NEEDS_JWT,
        },
    )
    def create(self, request):
        incoming = APIKeyCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        key, plaintext = services.api_key_create(user=request.user, **incoming.validated_data)
        body = APIKeyCreatedSerializer(key, context={"plaintext": plaintext}).data
        # The one response that carries the key: keep it out of every cache.
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    @extend_schema(summary="Revoke an API key", responses={204: None, 403: _NEEDS_JWT, 404: None})
    def destroy(self, request, pk=None):
        services.api_key_revoke(key=self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
