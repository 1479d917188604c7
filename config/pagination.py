"""List pagination shared by every endpoint: `{next, previous, results}`, `?page_size=` up to 100."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, pagination

INVALID_CURSOR = {"cursor": ["Invalid cursor: use the `next` or `previous` link of a page as given."]}


class PageNumberPagination(pagination.PageNumberPagination):
    """Numbered pages with a count, for lists that stay small per user (sessions, keys, tasks)."""

    page_size_query_param = "page_size"
    max_page_size = 100


class CursorPagination(pagination.CursorPagination):
    """Cursor pages for big tables: constant cost however deep the client pages, no count."""

    page_size_query_param = "page_size"
    max_page_size = 100
    ordering = ("-created_at", "-id")

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
