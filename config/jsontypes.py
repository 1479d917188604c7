"""JSON bodies hold the types the OpenAPI document gives their fields, or they are a 400.

DRF coerces: a CharField takes `0` as "0", an IntegerField takes "5", a BooleanField takes "yes"
and 1. That suits HTML forms, where every value is text, but a JSON client that sends
`{"task_name": 0}` sent what the schema calls invalid. `type_errors` names each field whose JSON
value has the wrong type, walking nested serializers and lists; `config.viewsets.validated` refuses
the body with them before the serializer runs. Forms (a QueryDict) are left to DRF.
"""

from collections.abc import Mapping

from rest_framework import fields, serializers
from rest_framework.utils import html

MESSAGES = {
    "string": "Must be a string.",
    "integer": "A valid integer is required.",
    "number": "A valid number is required.",
    "boolean": "Must be true or false.",
    "object": "Expected an object.",
    "array": "Expected a list.",
}


def _json_type(field) -> str | None:
    """The JSON type the schema gives `field`; None where the field itself checks (choices, JSON...)."""
    if isinstance(field, fields.ChoiceField | fields.JSONField | fields.DictField | fields.ReadOnlyField):
        return None
    if isinstance(field, fields.BooleanField):
        return "boolean"
    if isinstance(field, fields.CharField):  # Email, URL, Regex, Slug, UUID...
        return "string"
    if isinstance(field, fields.IntegerField):
        return "integer"
    if isinstance(field, fields.FloatField):
        return "number"
    if isinstance(field, serializers.BaseSerializer) and not isinstance(field, serializers.ListSerializer):
        return "object"
    if isinstance(field, fields.ListField | serializers.ListSerializer):
        return "array"
    return None


def _has_type(value, json_type: str) -> bool:
    if json_type == "string":
        return isinstance(value, str)
    if json_type == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if json_type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if json_type == "boolean":
        return isinstance(value, bool)
    if json_type == "object":
        return isinstance(value, Mapping)
    return isinstance(value, list)


def _value_errors(field, value):
    json_type = _json_type(field)
    if value is None or json_type is None:
        return None  # null is the field's to allow or refuse
    if not _has_type(value, json_type):
        return [MESSAGES[json_type]]
    if json_type == "object":
        return type_errors(field, value) or None
    if json_type == "array":
        child = field.child
        errors = {str(index): error for index, item in enumerate(value) if (error := _value_errors(child, item))}
        return errors or None
    return None


def type_errors(serializer, data) -> dict:
    """`{field: [message]}` for each value of the JSON object `data` whose type `serializer`'s field refuses."""
    if html.is_html_input(data) or not isinstance(data, Mapping):
        return {}
    errors = {}
    for name, field in serializer.fields.items():
        if field.read_only or field.source == "*" or name not in data:
            continue
        error = _value_errors(field, data[name])
        if error:
            errors[name] = error
    return errors
