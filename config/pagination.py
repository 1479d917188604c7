"""List pagination shared by every endpoint: `{next, previous, results}`, `?page_size=` up to 100.

The paging parameters are validated like a list's filters (a small serializer): `?page_size=abc`
or `?page=0` is a 400 naming the parameter, not a silent default. A page size over 100 is capped,
as DRF does and as published.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, pagination, serializers

from config.query import QueryIntegerField, validated_query

INVALID_CURSOR = {"cursor": ["Invalid cursor: use the `next` or `previous` link of a page as given."]}
MAX_PAGE_SIZE = 100
PAGE_SIZE_HELP = f"Results per page, at most {MAX_PAGE_SIZE} (a larger value is capped)."


class PageSizeQuerySerializer(serializers.Serializer):
    page_size = QueryIntegerField(min_value=1, required=False, help_text=PAGE_SIZE_HELP)


class PageQuerySerializer(PageSizeQuerySerializer):
    page = QueryIntegerField(min_value=1, required=False, help_text="A page number, from 1.")


def _page_size(paginator, request) -> int:
    size = validated_query(paginator.query_serializer_class, request.query_params).get("page_size")
    return paginator.page_size if size is None else min(size, paginator.max_page_size)


def _schema_parameters(parameters: list[dict]) -> list[dict]:
    """DRF's parameters, with the bounds the query serializer checks."""
    for parameter in parameters:
        if parameter["name"] in ("page", "page_size"):
            parameter["schema"] = {"type": "integer", "minimum": 1}
        if parameter["name"] == "page_size":
            parameter["description"] = PAGE_SIZE_HELP
    return parameters


class PageNumberPagination(pagination.PageNumberPagination):
    """Numbered pages with a count, for lists that stay small per user (sessions, keys, tasks)."""

    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    query_serializer_class = PageQuerySerializer

    def get_page_size(self, request):
        # DRF asks this first, so `?page=0` or `?page=x` is a 400 naming `page` before any query.
        return _page_size(self, request)

    def get_schema_operation_parameters(self, view):
        return _schema_parameters(super().get_schema_operation_parameters(view))


class CursorPagination(pagination.CursorPagination):
    """Cursor pages for big tables: constant cost however deep the client pages, no count."""

    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    ordering = ("-created_at", "-id")
    query_serializer_class = PageSizeQuerySerializer

    def get_page_size(self, request):
        return _page_size(self, request)

    def decode_cursor(self, request):
        # A tampered cursor is bad input (400), not a missing page (DRF answers 404).
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound:
            raise exceptions.ValidationError(INVALID_CURSOR) from None

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except DjangoValidationError:  # a well-formed cursor whose position is not a valid value
            raise exceptions.ValidationError(INVALID_CURSOR) from None

    def get_schema_operation_parameters(self, view):
        return _schema_parameters(super().get_schema_operation_parameters(view))
