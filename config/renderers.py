"""The API's JSON renderer: DRF's output, encoded by orjson.

DRF's renderer builds a json.JSONEncoder for every response; that and the encoding were 2% of a public
request's instructions (docs/benchmark.md). orjson writes the same compact UTF-8 document, and whatever it does not
know itself (dates and times, decimals, lazy strings, querysets) goes to DRF's own encoder, so values render as
they did. An indent asked for in the Accept header, or data orjson refuses (an integer beyond 64 bits), takes
DRF's own path.
"""

import orjson
from rest_framework import renderers
from rest_framework.utils.encoders import JSONEncoder

# Dates and times through DRF's encoder (ISO 8601 with "Z", milliseconds) rather than orjson's own format;
# int dict keys written as strings, as json does.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS
_drf_default = JSONEncoder().default
# What DRF's renderer escapes too: both are valid JSON but end a line in JavaScript.
_LINE_SEPARATORS = (("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029"))


class JSONRenderer(renderers.JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        if self.get_indent(accepted_media_type, renderer_context or {}) is None:
            try:
                content = orjson.dumps(data, default=_drf_default, option=_OPTIONS)
            except orjson.JSONEncodeError:
                pass
            else:
                for separator, escaped in _LINE_SEPARATORS:
                    if separator in content:
                        content = content.replace(separator, escaped)
                return content
        return super().render(data, accepted_media_type, renderer_context)
