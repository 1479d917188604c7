"""Tasks endpoints: thin views over tasks.services and tasks.selectors."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from tasks import selectors, services
from tasks.models import TaskStatus
from tasks.serializers import (
    AgentSettingsUpdateSerializer,
    BrowserSettingsUpdateSerializer,
    TaskCreateSerializer,
    TaskInitiateSerializer,
    TaskListQuerySerializer,
    TaskSerializer,
)

NOT_FOUND = OpenApiResponse(description="Not found, or not yours")
CONFLICT_ACTIVE = OpenApiResponse(description="The task is queued or running")


@extend_schema(tags=["tasks"])
class TaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your browser tasks: create, configure, initiate a run, follow it, cancel it, delete it."""

    serializer_class = TaskSerializer
    lookup_value_regex = "[0-9]+"

    def get_queryset(self):
        # Someone else's task is simply not in the queryset: 404, never 403.
        if self.action == "list":
            query = TaskListQuerySerializer(data=self.request.query_params)
            query.is_valid(raise_exception=True)
            return selectors.task_list(owner=self.request.user, status=query.validated_data.get("status"))
        return selectors.task_list(owner=self.request.user)

    def _respond(self, task, code=status.HTTP_200_OK):
        return Response(TaskSerializer(task).data, status=code)

    @extend_schema(
        parameters=[OpenApiParameter("status", enum=TaskStatus.values, required=False)],
        responses=TaskSerializer(many=True),
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=TaskCreateSerializer, responses={201: TaskSerializer})
    def create(self, request):
        incoming = TaskCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        task = services.task_create(owner=request.user, **incoming.validated_data)
        return self._respond(task, status.HTTP_201_CREATED)

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

    @extend_schema(
        request=AgentSettingsUpdateSerializer, responses={200: TaskSerializer, 404: NOT_FOUND, 409: CONFLICT_ACTIVE}
    )
    @action(detail=True, methods=["patch"], url_path="agent-settings")
    def agent_settings(self, request, pk=None):
        incoming = AgentSettingsUpdateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        task = services.task_agent_settings_update(task=self.get_object(), **incoming.validated_data)
        return self._respond(task)

    @extend_schema(
        request=BrowserSettingsUpdateSerializer, responses={200: TaskSerializer, 404: NOT_FOUND, 409: CONFLICT_ACTIVE}
    )
    @action(detail=True, methods=["patch"], url_path="browser-settings")
    def browser_settings(self, request, pk=None):
        incoming = BrowserSettingsUpdateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        task = services.task_browser_settings_update(task=self.get_object(), **incoming.validated_data)
        return self._respond(task)

    @extend_schema(
        request=TaskInitiateSerializer, responses={202: TaskSerializer, 404: NOT_FOUND, 409: CONFLICT_ACTIVE}
    )
    @action(detail=True, methods=["patch"])
    def initiate(self, request, pk=None):
        """Queue a run; a worker picks it up. Each initiate defines the whole run."""
        incoming = TaskInitiateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        task = services.task_initiate(task=self.get_object(), **incoming.validated_data)
        return self._respond(task, status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=None,
        responses={202: TaskSerializer, 404: NOT_FOUND, 409: OpenApiResponse(description="Not queued or running")},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a queued or running run; a running browser stops within a few seconds."""
        task = services.task_cancel(task=self.get_object())
        return self._respond(task, status.HTTP_202_ACCEPTED)
