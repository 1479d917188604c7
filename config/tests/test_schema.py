"""The OpenAPI document declares every error its views can answer (config/schema.py), and lists
validate their query parameters as the document says (config/query.py, config/pagination.py)."""

import uuid

import pytest
from django.urls import resolve
from drf_spectacular.generators import SchemaGenerator
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny, IsAuthenticated

from config import scopes
from config.permissions import APIKeyScope

ERROR_REF = {"$ref": "#/components/schemas/Error"}
# Answered by gunicorn for any path, before a view runs.
SERVER_CODES = {"414", "431"}


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method.upper(), operation


def view_of(path: str, method: str):
    """The view instance that serves `method path`, as the router builds it (the action set for viewsets)."""
    sample_id = str(uuid.uuid4()) if path.startswith("/api/v1/auth/sessions/") else "1"
    match = resolve(path.replace("{id}", sample_id).replace("{task_id}", sample_id).replace("{kind}", "gif"))
    view = match.func.cls(**match.func.initkwargs)
    actions = getattr(match.func, "actions", None)
    if actions:
        view.action = actions[method.lower()]
    return view


def expected_codes(path: str, method: str, operation: dict) -> set[str]:
    """What the view can answer, worked out here from the view's parts, not from config/schema.py."""
    view = view_of(path, method)
    codes = set()
    is_list = getattr(view, "action", None) == "list"
    if "requestBody" in operation or is_list:
        codes.add("400")
    if view.get_authenticators():
        codes.add("401")
    plain = (AllowAny, IsAuthenticated)
    for permission in view.get_permissions():
        # The scope check refuses only where the operation needs a scope (not the hello endpoints).
        if isinstance(permission, APIKeyScope):
            if scopes.declared_scope(view, method.upper()) is not scopes.NO_SCOPE:
                codes.add("403")
        elif type(permission) not in plain:
            codes.add("403")
    if "{" in path:
        codes.add("404")
    if view.content_negotiation_class is DefaultContentNegotiation:
        codes.add("406")
    if view.get_throttles():
        codes.add("429")
    return codes | SERVER_CODES


def test_every_operation_declares_each_error_its_view_can_answer(schema):
    missing = {}
    for path, method, operation in operations(schema):
        lacking = expected_codes(path, method, operation) - set(operation["responses"])
        if lacking:
            missing[f"{method} {path}"] = sorted(lacking)
    assert missing == {}


def test_every_error_response_has_the_error_body_and_its_header(schema):
    checked = 0
    for path, method, operation in operations(schema):
        for code, response in operation["responses"].items():
            if not code.startswith("4") or code in SERVER_CODES:
                continue
            body = response["content"]["application/json"]["schema"]
            if code == "400":
                assert body == {"anyOf": [{"$ref": "#/components/schemas/ValidationError"}, ERROR_REF]}, (path, method)
            else:
                assert body == ERROR_REF, (path, method, code)
            if code == "401":
                assert response["headers"]["WWW-Authenticate"]["required"] is True, (path, method)
            if code == "429":
                assert response["headers"]["Retry-After"]["schema"]["type"] == "integer", (path, method)
            checked += 1
    assert checked > 200  # every operation has several


def test_the_http_servers_own_refusals_are_declared_as_html_on_every_operation(schema):
    """gunicorn's 414 and 431 come before Django: an HTML page (config/tests/test_deployment.py sees one)."""
    for path, method, operation in operations(schema):
        for code in SERVER_CODES:
            assert operation["responses"][code]["content"] == {"text/html": {"schema": {"type": "string"}}}, (
                path,
                method,
                code,
            )


def test_error_components_require_a_detail_and_a_code(schema):
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["detail", "code"]
    assert set(error["properties"]) == {"detail", "code"}


@pytest.mark.parametrize(
    ("path", "method", "code"),
    [
        ("/api/v1/auth/api-keys", "post", "403"),  # HasJWT, RecentAuthentication
        ("/api/v1/users", "get", "403"),  # IsAdmin
        ("/api/v1/auth/login", "post", "429"),  # throttled, and public: no authenticator
        ("/api/v1/auth/login", "post", "401"),  # declared: wrong password
        ("/api/v1/auth/refresh", "post", "401"),
        ("/api/v1/auth/token", "post", "401"),
        ("/api/v1/tasks/{id}", "delete", "409"),  # declared: the task is running
        ("/api/v1/tasks/{id}/initiate", "patch", "429"),  # declared: the daily quota
        ("/api/v1/posts", "post", "415"),
        ("/api/v1/posts", "post", "413"),
        ("/api/v1/posts/{id}", "get", "404"),
        ("/api/v1/tasks", "get", "400"),
        ("/api/v1/auth/logout-all", "post", "406"),  # found by the fuzzer: `Accept:` empty
        ("/api/v1/hello", "get", "406"),
    ],
)
def test_known_answers_are_declared(schema, path, method, code):
    assert code in schema["paths"][path][method]["responses"]


@pytest.mark.parametrize(
    ("path", "method", "code"),
    [
        ("/api/v1/hello", "get", "401"),  # public, no authenticator
        ("/api/v1/hello", "get", "400"),  # no input at all
        ("/api/v1/auth/me", "get", "404"),  # no lookup
        ("/api/v1/posts/{id}", "get", "429"),  # no throttle
        ("/api/v1/hello/protected", "get", "403"),  # only IsAuthenticated, and a safe method
        ("/api/v1/results/{task_id}/{kind}", "get", "406"),  # a file answers any Accept
    ],
)
def test_answers_a_view_cannot_give_are_not_declared(schema, path, method, code):
    assert code not in schema["paths"][path][method]["responses"]


def test_list_parameters_are_documented_with_their_type_and_enum(schema):
    tasks = {p["name"]: p for p in schema["paths"]["/api/v1/tasks"]["get"]["parameters"]}
    assert tasks["status"]["schema"]["enum"] == ["created", "queued", "running", "completed", "failed", "cancelled"]
    assert tasks["page"]["schema"] == {"type": "integer", "minimum": 1}
    assert tasks["page_size"]["schema"] == {"type": "integer", "minimum": 1}
    posts = {p["name"]: p for p in schema["paths"]["/api/v1/posts"]["get"]["parameters"]}
    assert posts["mine"]["schema"]["type"] == "boolean"
    # Blank allowed: a string of 1..150 characters without NUL, or "".
    assert posts["author"]["schema"]["oneOf"] == [
        {"type": "string", "pattern": "^[^\\u0000]+$", "maxLength": 150},
        {"type": "string", "maxLength": 0},
    ]
    assert posts["cursor"]["schema"]["type"] == "string"


def test_request_bodies_are_json_except_where_the_view_names_its_parsers(schema):
    me = schema["paths"]["/api/v1/auth/me"]["patch"]["requestBody"]["content"]
    assert set(me) == {"application/json"}
    token = schema["paths"]["/api/v1/auth/token"]["post"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" in token


# REAL REQUESTS
# ------------------------------------------------------------------------------

PAGE_NUMBER_LISTS = ["/api/v1/tasks", "/api/v1/auth/api-keys", "/api/v1/auth/sessions", "/api/v1/provider-keys"]
CURSOR_LISTS = ["/api/v1/posts"]


@pytest.fixture
def admin_client(make_user, login, client_for):
    return client_for(login(make_user("root", is_staff=True)).access)


def bad_parameter(response, name):
    assert response.status_code == 400, response.content
    assert name in response.json(), response.json()


@pytest.mark.django_db
@pytest.mark.parametrize("url", PAGE_NUMBER_LISTS + CURSOR_LISTS + ["/api/v1/auth/events"])
@pytest.mark.parametrize("value", ["abc", "0", "-1", "5.0", " 5", ""])
def test_a_bad_page_size_is_a_400_naming_it(auth_client, url, value):
    bad_parameter(auth_client.get(url, {"page_size": value}), "page_size")


@pytest.mark.django_db
@pytest.mark.parametrize("url", PAGE_NUMBER_LISTS)
@pytest.mark.parametrize("value", ["abc", "0", "1.0", ""])
def test_a_bad_page_is_a_400_naming_it(auth_client, url, value):
    bad_parameter(auth_client.get(url, {"page": value}), "page")


@pytest.mark.django_db
def test_the_users_list_validates_its_paging_too(admin_client):
    bad_parameter(admin_client.get("/api/v1/users", {"page_size": "x"}), "page_size")
    bad_parameter(admin_client.get("/api/v1/users", {"page": "0"}), "page")
    assert admin_client.get("/api/v1/users", {"page_size": "1", "colour": "red"}).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("url", PAGE_NUMBER_LISTS + CURSOR_LISTS + ["/api/v1/auth/events"])
def test_unknown_parameters_are_ignored(auth_client, url):
    response = auth_client.get(url, {"colour": "red", "page_size": "2", "x": ""})
    assert response.status_code == 200, response.content
    assert "results" in response.json()


@pytest.mark.django_db
def test_page_size_over_the_limit_is_capped_not_refused(auth_client):
    assert auth_client.get("/api/v1/tasks", {"page_size": "1000"}).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "name"),
    [
        ({"status": "bogus"}, "status"),
        ({"status": ""}, "status"),
        ({"status": "RUNNING"}, "status"),
    ],
)
def test_task_filters_are_validated(auth_client, query, name):
    bad_parameter(auth_client.get("/api/v1/tasks", query), name)


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["maybe", "1", "yes", "True", ""])
def test_posts_mine_takes_true_or_false_only(auth_client, value):
    bad_parameter(auth_client.get("/api/v1/posts", {"mine": value}), "mine")


@pytest.mark.django_db
def test_posts_filters_accept_what_the_schema_documents(auth_client):
    assert auth_client.get("/api/v1/posts", {"mine": "true", "author": "alice"}).status_code == 200
    assert auth_client.get("/api/v1/posts", {"mine": "false"}).status_code == 200


# ERROR BODIES
# ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_request_level_errors_carry_a_code(api_client, auth_client):
    unauthenticated = api_client.get("/api/v1/auth/me")
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["code"] == "not_authenticated"
    assert unauthenticated["WWW-Authenticate"]
    missing = auth_client.get("/api/v1/tasks/999999")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    unrouted = auth_client.get("/api/v1/tasks/abc")
    assert unrouted.status_code == 404
    assert unrouted.json() == {"detail": "Not found.", "code": "not_found"}
    malformed = auth_client.post("/api/v1/posts", "{not json", content_type="application/json")
    assert malformed.status_code == 400
    assert malformed.json()["code"] == "parse_error"
    unsupported = auth_client.post("/api/v1/posts", "x", content_type="text/plain")
    assert unsupported.status_code == 415
    assert unsupported.json()["code"] == "unsupported_media_type"
    for accept in ("text/plain", ""):  # declared as 406 on every negotiating operation
        refused = auth_client.get("/api/v1/auth/me", HTTP_ACCEPT=accept)
        assert refused.status_code == 406
        assert refused.json()["code"] == "not_acceptable"


@pytest.mark.django_db
def test_non_api_key_endpoints_refuse_an_api_key_with_a_code(user, client_for):
    from apikeys import services as key_services

    _, plaintext = key_services.api_key_create(user=user, name="k", expires_days=None)
    response = client_for(plaintext).post("/api/v1/auth/logout-all")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


# BODIES AS THE SCHEMA DESCRIBES THEM
# ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "method", "body", "field"),
    [
        ("/api/v1/tasks", "post", {"task_name": 0}, "task_name"),
        ("/api/v1/tasks", "post", {"task_name": ["a"]}, "task_name"),
        ("/api/v1/auth/me", "patch", {"email": ""}, "email"),
        ("/api/v1/auth/me", "patch", {"name": 5}, "name"),
        ("/api/v1/auth/me", "patch", {"name": "a\x00b"}, "name"),
        ("/api/v1/auth/api-keys", "post", {"name": "k", "expires_days": "30"}, "expires_days"),
        ("/api/v1/auth/api-keys", "post", {"name": "k", "expires_days": 30.5}, "expires_days"),
        ("/api/v1/auth/api-keys", "post", {"name": "k", "expires_days": True}, "expires_days"),
        ("/api/v1/auth/api-keys", "post", {"name": 7}, "name"),
    ],
)
def test_what_the_schema_calls_invalid_is_a_400(auth_client, url, method, body, field):
    response = getattr(auth_client, method)(url, body, format="json")
    bad_parameter(response, field)


@pytest.mark.django_db
def test_nested_values_of_the_wrong_type_are_named(auth_client):
    task = auth_client.post("/api/v1/tasks", {"task_name": "t"}, format="json").json()
    response = auth_client.patch(
        f"/api/v1/tasks/{task['id']}/browser-settings", {"window_width": "1280"}, format="json"
    )
    bad_parameter(response, "window_width")


@pytest.mark.django_db
def test_forms_keep_drf_semantics(auth_client):
    # The browsable API posts forms, where every value is text: not refused for its type.
    response = auth_client.post(
        "/api/v1/tasks", "task_name=from+a+form", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("path", "method", "scope"),
    [
        ("/api/v1/posts", "post", "posts:write"),
        ("/api/v1/posts", "get", "posts:read"),
        ("/api/v1/tasks/{id}/initiate", "patch", "tasks:write"),
        ("/api/v1/auth/me", "get", "profile:read"),
        ("/api/v1/hello/protected", "get", None),
    ],
)
def test_each_operation_names_the_scope_an_api_key_needs(schema, path, method, scope):
    operation = schema["paths"][path][method]
    assert operation["x-api-key-scope"] == scope
    assert ("403" in operation["responses"]) == (scope is not None)
    if scope is not None:
        assert f"`{scope}`" in operation["description"]
