"""config.renderers.JSONRenderer writes, byte for byte, what DRF's own JSON renderer writes."""

import datetime as dt
import json
import math
import uuid
from decimal import Decimal

import pytest
from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer as DRFJSONRenderer
from rest_framework.utils.serializer_helpers import ReturnDict

from config.renderers import JSONRenderer

VALUES = {
    "text": 'Grüße, 世界 " \\ \n',
    "line separators": "a\u2028b\u2029c",
    "numbers": [0, -1, 2**63 - 1, 1.5, 0.1, 123456.789, True, False, None],
    "aware datetime": dt.datetime(2026, 12, 8, 2, 3, 4, 567891, tzinfo=dt.UTC),
    "naive datetime": dt.datetime(2026, 12, 8, 2, 3, 4),
    "date and time": [dt.date(2026, 12, 8), dt.time(2, 3, 4, 500000)],
    "timedelta": dt.timedelta(hours=1, seconds=3),
    "decimal": Decimal("12.50"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "lazy string": gettext_lazy("This field is required."),
    "int keys": {1: "one", 2: "two"},
    "tuple": (1, "two"),
    "bytes": b"raw",
    "generator": (n * n for n in range(3)),
    "serializer data": ReturnDict({"id": 1, "nested": {"b": [1, 2]}}, serializer=None),
}


@pytest.mark.parametrize("name", VALUES)
def test_each_kind_of_value_renders_as_drf_renders_it(name):
    value = VALUES[name]
    if name == "generator":  # consumed by the first render
        ours, theirs = JSONRenderer().render(iter([0, 1, 4])), DRFJSONRenderer().render(iter([0, 1, 4]))
    else:
        ours, theirs = JSONRenderer().render({"value": value}), DRFJSONRenderer().render({"value": value})
    assert ours == theirs


def test_an_integer_orjson_refuses_and_an_indent_take_drfs_path():
    huge = {"value": 2**80}
    assert JSONRenderer().render(huge) == DRFJSONRenderer().render(huge) == b'{"value":1208925819614629174706176}'
    accept = "application/json; indent=2"
    indented = JSONRenderer().render({"a": [1]}, accept)
    assert indented == DRFJSONRenderer().render({"a": [1]}, accept) == b'{\n  "a": [\n    1\n  ]\n}'


def test_a_float_with_an_exponent_is_written_shorter_but_reads_the_same():
    data = {"value": [1e-7, 2.5e20]}
    assert JSONRenderer().render(data) == b'{"value":[1e-7,2.5e+20]}'  # json writes 1e-07
    assert json.loads(JSONRenderer().render(data)) == json.loads(DRFJSONRenderer().render(data))


def test_no_data_is_an_empty_body_and_nan_is_null_instead_of_a_500():
    assert JSONRenderer().render(None) == b""
    # DRF's STRICT_JSON raises ValueError (a 500); JSON has no NaN, and null is what a client can read.
    assert JSONRenderer().render({"value": math.nan}) == b'{"value":null}'


def test_the_api_answers_through_it(api_client):
    response = api_client.get("/api/v1/hello")
    assert isinstance(response.accepted_renderer, JSONRenderer)
    assert response.content == b'{"message":"Hello, World!"}' and response["Content-Type"] == "application/json"
