"""Request parsers. There is no multipart parser: no endpoint takes files, so a multipart body is a 415.

Bodies are capped by Django's DATA_UPLOAD_MAX_MEMORY_SIZE: DRF reads JSON and form bodies through
`request.body`, which refuses a larger one before reading it (a 413, config/exceptions.py)."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, but deeply nested documents are a 400 instead of a RecursionError (500)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - document is nested too deeply.") from None
