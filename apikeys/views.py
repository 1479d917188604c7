"""API key endpoints: thin views over apikeys.services and apikeys.selectors."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.response import Response

from accounts.permissions import CredentialPermissionsMixin
from apikeys import selectors, services
from apikeys.serializers import APIKeyCreatedSerializer, APIKeyCreateSerializer, APIKeySerializer
from config import scopes
from config.viewsets import NEEDS_JWT, NOT_FOUND, APIViewSet, validated


@extend_schema(tags=["api-keys"])
@extend_schema_view(
    list=extend_schema(summary="List your API keys (never the keys themselves)"),
    retrieve=extend_schema(summary="One of your API keys", responses={200: APIKeySerializer, 404: NOT_FOUND}),
)
class APIKeyViewSet(CredentialPermissionsMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, APIViewSet):
    """The caller's API keys. Creating and revoking need a JWT from a password login: a key cannot mint keys."""

    serializer_class = APIKeySerializer
    # Any key may read the caller's keys (never the keys themselves); create and destroy refuse keys.
    required_scopes = {"list": scopes.NO_SCOPE, "retrieve": scopes.NO_SCOPE}

    def caller_queryset(self, user, **filters):
        return selectors.api_key_list(user=user)

    @extend_schema(
        summary="Create an API key (the key is in this response only)",
        request=APIKeyCreateSerializer,
        responses={
            201: APIKeyCreatedSerializer,
            400: OpenApiResponse(description="Invalid input or too many active keys"),
            403: NEEDS_JWT,
        },
    )
    def create(self, request):
        key, plaintext = services.api_key_create(user=request.user, **validated(APIKeyCreateSerializer, request.data))
        return self.respond(
            key,
            status=status.HTTP_201_CREATED,
            serializer_class=APIKeyCreatedSerializer,
            context={"plaintext": plaintext},
            # The one response that carries the key: keep it out of every cache.
            headers={"Cache-Control": "no-store"},
        )

    @extend_schema(summary="Revoke an API key", responses={204: None, 403: NEEDS_JWT, 404: NOT_FOUND})
    def destroy(self, request, pk=None):
        services.api_key_revoke(key=self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
