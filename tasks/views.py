"""Tasks endpoints: thin views over tasks.services and tasks.selectors."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.permissions import CredentialPermissionsMixin
from config import scopes
from config.viewsets import NEEDS_JWT, NOT_FOUND, APIViewSet, validated
from tasks import selectors, services
from tasks.serializers import (
    AgentSettingsUpdateSerializer,
    BrowserSettingsUpdateSerializer,
    ProviderKeyCreateSerializer,
    ProviderKeySerializer,
    TaskCreateSerializer,
    TaskInitiateSerializer,
    TaskListQuerySerializer,
    TaskSerializer,
)

CONFLICT_ACTIVE = OpenApiResponse(description="The task is queued or running")
INITIATE_RESPONSES = {
    202: TaskSerializer,
    400: OpenApiResponse(description="A bad field or step, named in the body"),
    404: NOT_FOUND,
    409: OpenApiResponse(
        description="The task is queued or running, or you have TASKS_MAX_ACTIVE_PER_USER runs queued or running"
    ),
    429: OpenApiResponse(
        description="Your daily run quota (TASKS_DAILY_RUNS_PER_USER runs in any 24 hours) is used up; "
        "`Retry-After` says in how many seconds the next run can be queued",
        response={"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]},
    ),
}
RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    type=int,
    location=OpenApiParameter.HEADER,
    response=[429],
    description="Seconds until a run can be queued again",
)
SETTINGS_RESPONSES = {200: TaskSerializer, 404: NOT_FOUND, 409: CONFLICT_ACTIVE}


@extend_schema(tags=["tasks"])
@extend_schema_view(list=extend_schema(responses=TaskSerializer(many=True)))
class TaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, APIViewSet):
    """Your browser tasks: create, configure, initiate a run, follow it, cancel it, delete it."""

    serializer_class = TaskSerializer
    list_query_serializer_class = TaskListQuerySerializer
    required_scopes = {
        "list": scopes.TASKS_READ,
        "retrieve": scopes.TASKS_READ,
        **dict.fromkeys(
            ["create", "destroy", "agent_settings", "browser_settings", "initiate", "cancel"], scopes.TASKS_WRITE
        ),
    }

    def caller_queryset(self, user, **filters):
        return selectors.task_list(owner=user, **filters)

    @extend_schema(request=TaskCreateSerializer, responses={201: TaskSerializer})
    def create(self, request):
        task = services.task_create(owner=request.user, **validated(TaskCreateSerializer, request.data))
        return self.respond(task, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None, 404: NOT_FOUND, 409: OpenApiResponse(description="The task is running")})
    def destroy(self, request, pk=None):
        """Delete the task, its result and files. Files the storage refuses now are retried later (`Warning` header)."""
        left = services.task_delete(task=self.get_object())
        response = Response(status=status.HTTP_204_NO_CONTENT)
        if left:  # a 204 has no body: the warning goes in an RFC 7234 Warning header
            response["Warning"] = (
                f'199 - "{left} stored file(s) could not be deleted now; the deletion is recorded and will be retried."'
            )
        return response

    @extend_schema(request=AgentSettingsUpdateSerializer, responses=SETTINGS_RESPONSES)
    @action(detail=True, methods=["patch"], url_path="agent-settings")
    def agent_settings(self, request, pk=None):
        changes = validated(AgentSettingsUpdateSerializer, request.data)
        return self.respond(services.task_agent_settings_update(task=self.get_object(), **changes))

    @extend_schema(request=BrowserSettingsUpdateSerializer, responses=SETTINGS_RESPONSES)
    @action(detail=True, methods=["patch"], url_path="browser-settings")
    def browser_settings(self, request, pk=None):
        changes = validated(BrowserSettingsUpdateSerializer, request.data)
        return self.respond(services.task_browser_settings_update(task=self.get_object(), **changes))

    @extend_schema(request=TaskInitiateSerializer, responses=INITIATE_RESPONSES, parameters=[RETRY_AFTER])
    @action(detail=True, methods=["patch"])
    def initiate(self, request, pk=None):
        """Queue a run; a worker picks it up, each user's runs in turn. Each initiate defines the whole run."""
        run = validated(TaskInitiateSerializer, request.data)
        return self.respond(services.task_initiate(task=self.get_object(), **run), status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=None,
        responses={202: TaskSerializer, 404: NOT_FOUND, 409: OpenApiResponse(description="Not queued or running")},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a queued or running run; a running browser stops within a few seconds."""
        return self.respond(services.task_cancel(task=self.get_object()), status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["provider-keys"])
@extend_schema_view(
    list=extend_schema(summary="List your provider keys (never the keys themselves)"),
)
class ProviderKeyViewSet(CredentialPermissionsMixin, mixins.ListModelMixin, APIViewSet):
    """Your API keys for language-model providers, used by your agent runs. Storing and deleting need a JWT."""

    serializer_class = ProviderKeySerializer
    # Provider keys serve agent runs: reading them (never the keys themselves) is part of tasks:read.
    required_scopes = {"list": scopes.TASKS_READ}

    def caller_queryset(self, user, **filters):
        return selectors.provider_key_list(owner=user)

    @extend_schema(
        summary="Store a provider key, in plain or encrypted with GET /api/v1/crypto/public-key",
        request=ProviderKeyCreateSerializer,
        responses={
            201: ProviderKeySerializer,
            400: OpenApiResponse(
                description="Both or neither of api_key and encrypted_api_key, a ciphertext that does not decrypt, "
                "an unknown kid, a bad or refused base_url (required for openai_compatible), named in the body"
            ),
            403: NEEDS_JWT,
        },
    )
    def create(self, request):
        key = services.provider_key_create(owner=request.user, **validated(ProviderKeyCreateSerializer, request.data))
        return self.respond(key, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Delete a provider key; runs that name it fail at initiate from now on",
        responses={204: None, 403: NEEDS_JWT, 404: NOT_FOUND},
    )
    def destroy(self, request, pk=None):
        services.provider_key_delete(key=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
