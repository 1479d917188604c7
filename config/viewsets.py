"""The shared base of the API's views: validate input, find the caller's objects, look an id up, respond.

A viewset names the selector that gives the caller's objects and, when its list takes filters, the
serializer that checks them; `APIViewSet` does the rest the same way for every app:

    class TaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, APIViewSet):
        serializer_class = TaskSerializer  # what respond() and the list serialize with
        list_query_serializer_class = TaskListQuerySerializer  # ?status=bogus is a 400 naming `status`

        def caller_queryset(self, user, **filters):
            return selectors.task_list(owner=user, **filters)  # someone else's task is not in it: 404

        def cancel(self, request, pk=None):
            return self.respond(services.task_cancel(task=self.get_object()), status=202)

Plain `APIView`s (results, login...) use `RespondMixin` and `validated()` on their own.
"""

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse
from rest_framework import status as http_status
from rest_framework import viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from config.jsontypes import type_errors
from config.query import validated_query

# The largest PostgreSQL bigint, so the largest id Django's BigAutoField can hold: a larger one names nothing.
BIGINT_MAX = 2**63 - 1

# OpenAPI descriptions shared by the apps' operations.
NOT_FOUND = OpenApiResponse(description="Not found, or not yours")
NEEDS_JWT = OpenApiResponse(description="Authenticated with an API key or a session: this needs a JWT")


def validated(serializer_class, data, **kwargs) -> dict:
    """`data` as `serializer_class` validates it; otherwise a 400 that names each bad field.

    A JSON value of the wrong type (`0` for a string) is refused, not coerced (config/jsontypes.py).
    """
    incoming = serializer_class(data=data, **kwargs)
    wrong_types = type_errors(incoming, data)
    if wrong_types:
        raise ValidationError(wrong_types)
    incoming.is_valid(raise_exception=True)
    return incoming.validated_data


def is_bigint_id(value: str) -> bool:
    """Whether `value` is an id: plain ASCII digits within bigint range."""
    # int() would accept " 7", "+7", "7_0" and non-ASCII digits such as "١".
    return value.isascii() and value.isdigit() and int(value) <= BIGINT_MAX


def require_id(value) -> int:
    """`value` (a URL segment) as an int id; a JSON 404 when it cannot be one, before any query."""
    value = str(value)
    if not is_bigint_id(value):
        raise Http404
    return int(value)


class RespondMixin:
    """`respond()`: the one way a view answers with an object, serialized by the view's output serializer."""

    # A plain APIView names its output serializer here; a viewset's default is its `serializer_class`.
    output_serializer_class = None

    def get_serializer_context(self) -> dict:
        # The context DRF's GenericAPIView gives its serializers, so plain APIViews hand over the same.
        return {"request": self.request, "format": self.format_kwarg, "view": self}

    def respond(
        self,
        instance,
        *,
        status: int = http_status.HTTP_200_OK,
        serializer_class=None,
        context: dict | None = None,
        headers: dict | None = None,
    ) -> Response:
        """`instance` serialized by `serializer_class` (default: the view's output serializer), as a Response."""
        serializer_class = serializer_class or self.output_serializer_class or self.serializer_class
        serializer = serializer_class(instance, context={**self.get_serializer_context(), **(context or {})})
        return Response(serializer.data, status=status, headers=headers)


class APIViewSet(RespondMixin, viewsets.GenericViewSet):
    """Base of the API's viewsets: the caller's objects, validated list filters, safe id lookups, `respond()`.

    - `caller_queryset(user, **filters)`: the subclass returns, from its app's selector, the objects the
      caller may see. Another user's private object is simply not in it, so it is a 404, never a 403.
    - `list_query_serializer_class`: checks `request.query_params` of the list; its validated data are
      the filters. A bad value is a 400 naming the parameter; an unknown parameter is ignored.
    - Ids: a segment that is not digits does not route (`lookup_value_regex`) and gets the project's
      JSON 404 (`config.views.not_found`); `get_object()` answers one beyond bigint range with a JSON
      404 before any query. A view whose ids are not bigints overrides `is_valid_lookup()`.
    """

    lookup_value_regex = "[0-9]+"
    list_query_serializer_class = None

    def caller_queryset(self, user, **filters):
        raise NotImplementedError(f"{type(self).__name__} must say which selector gives the caller's objects")

    def get_queryset(self):
        filters = {}
        if self.action == "list" and self.list_query_serializer_class is not None:
            filters = validated_query(self.list_query_serializer_class, self.request.query_params)
        return self.caller_queryset(self.request.user, **filters)

    def is_valid_lookup(self, value: str) -> bool:
        """Whether the URL's id can name an object of this view; checked before any query."""
        return is_bigint_id(value)

    def get_object(self):
        if not self.is_valid_lookup(self.kwargs[self.lookup_url_kwarg or self.lookup_field]):
            raise Http404
        return super().get_object()
