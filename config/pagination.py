"""List pagination shared by every endpoint: `{next, previous, results}`, `?page_size=` up to 100."""

from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """Numbered pages with a count, for lists that stay small per user (sessions, keys, tasks)."""

    page_size_query_param = "page_size"
    max_page_size = 100


class CursorPagination(pagination.CursorPagination):
    """Cursor pages for big tables: constant cost however deep the client pages, no count."""

    page_size_query_param = "page_size"
    max_page_size = 100
    ordering = ("-created_at", "-id")
