"""Query-parameter fields for the lists' filter serializers (`list_query_serializer_class`) and paginators.

A query string carries text, so these take exactly the spelling the schema documents and refuse
the rest with a 400 naming the parameter: `?mine=yes` or `?page_size=5.0` is not silently read
as something else, and what the OpenAPI document calls invalid is invalid.
"""

from rest_framework import serializers


class QueryBooleanField(serializers.BooleanField):
    """`true` or `false` (DRF alone would also read `yes`, `on`, `1`, `True`...)."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        if data == "true" or data is True:
            return True
        if data == "false" or data is False:
            return False
        self.fail("invalid")


class QueryIntegerField(serializers.IntegerField):
    """ASCII digits (DRF alone would also read ` 5`, `5.0`, `+5`)."""

    def to_internal_value(self, data):
        if isinstance(data, str) and not (data.isascii() and data.isdigit()):
            self.fail("invalid")
        return super().to_internal_value(data)


def validated_query(serializer_class, query_params) -> dict:
    """The query parameters `serializer_class` knows, validated; a 400 naming each bad one. Others are ignored."""
    # A plain dict, not the QueryDict: `?status=` is then an empty value to check, not "not given".
    incoming = serializer_class(data=query_params.dict())
    incoming.is_valid(raise_exception=True)
    return incoming.validated_data
