"""The OpenAPI schema's error answers, derived from each view (REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]).

drf-spectacular documents the success codes only. `AutoSchema` adds, to every operation, each error
status its view can answer, read off what the view is made of rather than written per view:

- 400 (`{field: [messages]}` or `{detail, code}`): the operation has a request body (a serializer
  validates it, and malformed JSON is a parse error) or validated query parameters (a list's
  `list_query_serializer_class`, its paginator's `page`/`page_size`/`cursor`).
- 401 (`{detail, code}` + `WWW-Authenticate`): the view runs authenticators (a stale or wrong
  credential is refused even where none is needed).
- 403: a permission beyond AllowAny/IsAuthenticated (HasJWT, IsAdmin, ...), an API key scope the
  operation needs, or an unsafe method where a session cookie must carry a CSRF token. Each operation
  also names the scope an API key needs (`x-api-key-scope`, and a sentence in its description).
- 404: a route with a path parameter (the object may not exist or not be yours), or a numbered page
  past the last.
- 406: the view negotiates its answer's media type (DRF's default): an `Accept` header naming none it
  renders (`text/plain`, or an empty one) is refused.
- 413 and 415: the operation reads a request body (too large; a content type no parser reads).
- 429 (`Retry-After`): the view has throttles.
- 414 and 431, on every operation: a request line or headers over the HTTP server's limits. gunicorn
  answers them before the request reaches Django, with a small HTML page, not the JSON error body.

Request bodies are documented as JSON (see `map_parsers`). Codes that cannot be read off the view
(409 conflicts, a service's own 400/429) are declared where the view raises them,
`@extend_schema(responses={409: OpenApiResponse(description=...)})`: this class gives every 4xx
the error body (and 401/429 their header), so a declaration is only a description.
"""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework import pagination, serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.settings import api_settings

from config import scopes
from config.errors import WWW_AUTHENTICATE
from config.permissions import APIKeyScope

ERROR = {
    "type": "object",
    "description": "A request-level error: a message for people and a stable code for programs.",
    "properties": {
        "detail": {"type": "string", "description": "What went wrong and what to do about it."},
        "code": {
            "type": "string",
            "description": "Machine-readable: `not_authenticated`, `authentication_failed`, `permission_denied`, "
            "`reauth_required`, `insufficient_scope`, `not_found`, `not_acceptable`, `conflict`, `throttled`, "
            "`parse_error`, `unsupported_media_type`, `request_too_large`, ...",
        },
    },
    "required": ["detail", "code"],
}
VALIDATION_ERROR = {
    "type": "object",
    "description": "Invalid input: each bad field (or query parameter) with its messages; "
    "`non_field_errors` for a rule about several. Nested input has nested errors.",
    # A field's list of messages, or (nested input) its parts' errors: `{"steps": {"1": {"url": [...]}}}`.
    # Left open (any value): client generators such as openapi-python-client cannot read a union here.
    "additionalProperties": {},
}
HEADERS = {
    "401": {
        "WWW-Authenticate": {
            "schema": {"type": "string"},
            "required": True,
            "description": f"How to authenticate: `{WWW_AUTHENTICATE}`.",
        }
    },
    "429": {
        "Retry-After": {
            "schema": {"type": "integer", "minimum": 1},
            "required": True,
            "description": "Seconds to wait before trying again.",
        }
    },
}
DEFAULT_DESCRIPTIONS = {
    "400": "Invalid input: the body names each bad field or query parameter",
    "401": "Missing, invalid, expired or revoked credentials",
    "403": "Authenticated, but not allowed",
    "404": "Not found, or not yours",
    "406": "The `Accept` header names no media type this operation answers with",
    "409": "Conflict with the current state",
    "413": "Request body too large",
    "415": "Unsupported content type of the body",
    "429": "Too many requests: wait `Retry-After` seconds",
}
# gunicorn's limits (its defaults: config/gunicorn.py leaves them, config/tests/test_deployment.py checks them).
REQUEST_LINE_LIMIT = 4094
HEADER_FIELD_SIZE_LIMIT = 8190
HEADER_FIELDS_LIMIT = 100
SERVER_DESCRIPTIONS = {
    "414": f"Request line (method, path and query string) over {REQUEST_LINE_LIMIT} bytes: "
    "refused by the HTTP server with an HTML page",
    "431": f"A header over {HEADER_FIELD_SIZE_LIMIT} bytes, or more than {HEADER_FIELDS_LIMIT} headers: "
    "refused by the HTTP server with an HTML page",
}
# As drf-spectacular: OpenAPI 3.0 gives DELETE no body (one that reads a body declares its 400 itself).
NO_NUL = "^[^\\u0000]*$"
NO_NUL_NOT_EMPTY = "^[^\\u0000]+$"
BODY_METHODS = {"POST", "PUT", "PATCH"}
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's AutoSchema, plus every error answer the view can give (module docstring)."""

    def map_parsers(self):
        # Every view also reads forms (FormParser, for the browsable API's forms), where a field left
        # empty means "not given": the document offers JSON, whose types the serializers check, unless
        # the view names its own parsers (the OAuth2 token endpoint takes a form).
        media_types = super().map_parsers()
        if self.view.parser_classes == api_settings.DEFAULT_PARSER_CLASSES:
            media_types = [media_type for media_type in media_types if "json" in media_type] or media_types
        return media_types

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        # DRF's CharField refuses a NUL character (ProhibitNullCharactersValidator): say so. Where blank
        # is allowed drf-spectacular then offers `oneOf: [<this>, ""]`, so this one must not match "" too.
        if (
            direction == "request"
            and isinstance(field, serializers.CharField)
            and schema.get("type") == "string"
            and not {"pattern", "format", "enum"} & set(schema)
        ):
            schema["pattern"] = NO_NUL_NOT_EMPTY if field.allow_blank else NO_NUL
        return schema

    def get_override_parameters(self):
        parameters = super().get_override_parameters()
        query_serializer = self._list_query_serializer()
        if query_serializer is not None and query_serializer not in parameters:
            parameters = [*parameters, query_serializer]
        return parameters

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in sorted(set(self._error_codes()) | {c for c in responses if c.startswith("4")}):
            declared = responses.get(code, {})
            responses[code] = self._error_response(code, declared.get("description"))
        return responses

    # What the view can answer
    # --------------------------------------------------------------------------

    def _list_query_serializer(self):
        if getattr(self.view, "action", None) == "list" or (self.method == "GET" and self._is_list_view()):
            return getattr(self.view, "list_query_serializer_class", None)
        return None

    def _has_request_body(self) -> bool:
        return self.method in BODY_METHODS and self.get_request_serializer() is not None

    def _paginator(self):
        if self.method == "GET" and self._is_list_view():
            return self._get_paginator()
        return None

    def _error_codes(self) -> list[str]:
        codes = []
        paginator = self._paginator()
        if self._has_request_body() or self._list_query_serializer() is not None or paginator is not None:
            codes.append("400")
        if self.view.get_authenticators():
            codes.append("401")
        if self._can_forbid():
            codes.append("403")
        if "{" in self.path or isinstance(paginator, pagination.PageNumberPagination):
            codes.append("404")
        if isinstance(self.view.get_content_negotiator(), DefaultContentNegotiation):
            codes.append("406")
        if self._has_request_body():
            codes += ["413", "415"]
        if self.view.get_throttles():
            codes.append("429")
        return [*codes, *SERVER_DESCRIPTIONS]

    def _can_forbid(self) -> bool:
        plain = (AllowAny, IsAuthenticated)
        for permission in self.view.get_permissions():
            if isinstance(permission, APIKeyScope):
                if self._api_key_scope() is not scopes.NO_SCOPE:
                    return True  # a key without the scope: 403 insufficient_scope
            elif type(permission) not in plain:
                return True
        csrf = any(isinstance(auth, SessionAuthentication) for auth in self.view.get_authenticators())
        return csrf and self.method in UNSAFE_METHODS

    def _api_key_scope(self):
        """The scope an API key needs for this operation (config.scopes), as the view declares it."""
        return scopes.declared_scope(self.view, self.method)

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is not None and any(isinstance(p, APIKeyScope) for p in self.view.get_permissions()):
            # The scope a key needs, for generated clients and readers alike: `x-api-key-scope`, and a sentence.
            scope = self._api_key_scope()
            operation["x-api-key-scope"] = scope
            sentence = {
                scopes.NO_SCOPE: "API keys need no scope here.",
                scopes.FULL_ACCESS: "An API key needs every scope here.",
            }.get(scope, f"An API key needs the scope `{scope}`.")
            operation["description"] = f"{operation.get('description', '')}\n\n{sentence}".strip()
        return operation

    # The bodies
    # --------------------------------------------------------------------------

    def _component(self, name: str, schema: dict) -> dict:
        component = ResolvedComponent(name=name, type=ResolvedComponent.SCHEMA, schema=schema, object=name)
        self.registry.register_on_missing(component)
        return component.ref

    def _error_response(self, code: str, description: str | None) -> dict:
        if code in SERVER_DESCRIPTIONS:
            return {"content": {"text/html": {"schema": {"type": "string"}}}, "description": SERVER_DESCRIPTIONS[code]}
        error = self._component("Error", ERROR)
        schema = {"anyOf": [self._component("ValidationError", VALIDATION_ERROR), error]} if code == "400" else error
        response = {
            "content": {"application/json": {"schema": schema}},
            "description": description or DEFAULT_DESCRIPTIONS.get(code, "Error"),
        }
        if code in HEADERS:
            response["headers"] = HEADERS[code]
        return response
