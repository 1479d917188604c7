"""API key scopes: chosen at creation (API, admin, CLI), shown, enforced by config.permissions.APIKeyScope
from what each view declares, and never widened by a key; JWTs and session cookies are not scoped."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import get_resolver, reverse
from django.urls.resolvers import URLPattern, URLResolver
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from accounts.permissions import HasJWT
from apikeys.authentication import APIKeyAuthentication
from apikeys.models import APIKey
from apikeys.tests.factories import APIKeyFactory
from config import scopes
from config.permissions import APIKeyScope, InsufficientScope
from posts.tests.factories import PostFactory
from tasks.tests.factories import TaskFactory

pytestmark = pytest.mark.django_db

API = "/api/v1"
KEYS = f"{API}/auth/api-keys"
ALL = list(scopes.ALL_SCOPES)


def key_client(key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key.plaintext)
    return client


def lacks(scope: str) -> dict:
    return {"detail": f"This API key lacks the scope {scope}", "code": "insufficient_scope"}


# CREATING AND SHOWING
# ------------------------------------------------------------------------------


def test_create_without_scopes_gives_every_scope(auth_client):
    response = auth_client.post(KEYS, {"name": "all"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["scopes"] == ALL
    assert APIKey.objects.get(pk=response.json()["id"]).scopes == ALL


def test_create_with_scopes_stores_them_in_canonical_order(auth_client):
    response = auth_client.post(KEYS, {"name": "ro", "scopes": ["results:read", "posts:read"]}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["scopes"] == ["posts:read", "results:read"]
    assert APIKey.objects.get(pk=response.json()["id"]).scopes == ["posts:read", "results:read"]


@pytest.mark.parametrize(
    "value,message",
    [
        (["posts:read", "posts:delete"], "is not a valid choice"),
        (["posts:read", "posts:read"], "only once"),
        ([], "may not be empty"),
        ("posts:read", "Expected a list"),
        (None, "may not be null"),
        ([7], "is not a valid choice"),
    ],
    ids=["unknown", "duplicate", "empty", "string", "null", "number"],
)
def test_create_with_bad_scopes_is_a_400_naming_the_field(auth_client, value, message):
    response = auth_client.post(KEYS, {"name": "bad", "scopes": value}, format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["scopes"] and message in str(response.json()["scopes"])
    assert not APIKey.objects.exists()


@pytest.mark.parametrize(
    "value,message",
    [(["nope"], "Unknown scope 'nope'"), (["tasks:read", "tasks:read"], "only once"), ([], "at least one")],
)
def test_the_service_refuses_bad_scopes_too(user, value, message):
    from django.core.exceptions import ValidationError

    from apikeys import services

    with pytest.raises(ValidationError) as raised:
        services.api_key_create(user=user, name="x", scopes=value)
    assert message in str(raised.value.message_dict["scopes"])


def test_list_and_detail_show_the_scopes(auth_client, user, other_user):
    narrow = APIKeyFactory(owner=user, name="narrow", scopes=["tasks:read"])
    wide = APIKeyFactory(owner=user, name="wide")
    APIKeyFactory(owner=other_user, scopes=["posts:write"])
    listed = {key["name"]: key["scopes"] for key in auth_client.get(KEYS).json()["results"]}
    assert listed == {"narrow": ["tasks:read"], "wide": ALL}
    assert auth_client.get(f"{KEYS}/{narrow.pk}").json()["scopes"] == ["tasks:read"]
    assert auth_client.get(f"{KEYS}/{wide.pk}").json()["scopes"] == ALL


def test_the_creation_event_records_the_scopes(auth_client, user):
    auth_client.post(KEYS, {"name": "ev", "scopes": ["profile:read"]}, format="json")
    event = user.security_events.get(type="api_key_created")
    assert event.detail["scopes"] == "profile:read"


# ENFORCEMENT, ENDPOINT BY ENDPOINT
# ------------------------------------------------------------------------------


@pytest.fixture
def objects(user):
    """The caller's post and task, which the endpoints below name."""
    return {"post": PostFactory(author=user), "task": TaskFactory(owner=user)}


# (method, path, body, scope, status with the scope). Bodies that would start real work (initiate)
# are invalid on purpose: a 400 is only reached once the scope check has let the request through.
ENDPOINTS = [
    ("get", "/auth/me", None, "profile:read", 200),
    ("get", "/posts", None, "posts:read", 200),
    ("get", "/posts/{post}", None, "posts:read", 200),
    ("post", "/posts", {"content": "hello"}, "posts:write", 201),
    ("patch", "/posts/{post}", {"content": "edited"}, "posts:write", 200),
    ("put", "/posts/{post}", {"content": "replaced"}, "posts:write", 200),
    ("delete", "/posts/{post}", None, "posts:write", 204),
    ("post", "/posts/{post}/vote", None, "posts:write", 201),
    ("delete", "/posts/{post}/vote", None, "posts:write", 404),
    ("get", "/tasks", None, "tasks:read", 200),
    ("get", "/tasks/{task}", None, "tasks:read", 200),
    ("get", "/provider-keys", None, "tasks:read", 200),
    ("post", "/tasks", {"task_name": "new"}, "tasks:write", 201),
    ("patch", "/tasks/{task}/agent-settings", {"temperature": 0.5}, "tasks:write", 200),
    ("patch", "/tasks/{task}/browser-settings", {"window_width": 1024}, "tasks:write", 200),
    ("patch", "/tasks/{task}/initiate", {}, "tasks:write", 400),
    ("post", "/tasks/{task}/cancel", None, "tasks:write", 409),
    ("delete", "/tasks/{task}", None, "tasks:write", 204),
    ("get", "/results/{task}", None, "results:read", 404),
    ("get", "/results/{task}/gif", None, "results:read", 404),
    ("delete", "/results/{task}", None, "results:write", 404),
]
ENDPOINT_IDS = [f"{method.upper()} {path} {scope}" for method, path, _, scope, _ in ENDPOINTS]


def call(client, objects, method, path, body):
    url = API + path.format(post=objects["post"].pk, task=objects["task"].pk)
    return getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)


@pytest.mark.parametrize("method,path,body,scope,status", ENDPOINTS, ids=ENDPOINT_IDS)
def test_a_key_with_the_scope_gets_through(user, objects, method, path, body, scope, status):
    key = APIKeyFactory(owner=user, scopes=[scope])
    response = call(key_client(key), objects, method, path, body)
    assert response.status_code == status, response.content


@pytest.mark.parametrize("method,path,body,scope,status", ENDPOINTS, ids=ENDPOINT_IDS)
def test_a_key_with_every_other_scope_is_refused(user, objects, method, path, body, scope, status):
    key = APIKeyFactory(owner=user, scopes=[other for other in ALL if other != scope])
    response = call(key_client(key), objects, method, path, body)
    assert response.status_code == 403 and response.json() == lacks(scope)


@pytest.mark.parametrize("method,path,body,scope,status", ENDPOINTS, ids=ENDPOINT_IDS)
def test_a_jwt_and_a_full_key_are_not_scoped(user, objects, auth_client, method, path, body, scope, status):
    assert call(auth_client, objects, method, path, body).status_code == status


@pytest.mark.parametrize("method,path,body,scope,status", ENDPOINTS[:3], ids=ENDPOINT_IDS[:3])
def test_a_full_key_and_a_session_cookie_are_not_scoped(user, objects, method, path, body, scope, status):
    assert call(key_client(APIKeyFactory(owner=user)), objects, method, path, body).status_code == status
    cookie = APIClient()
    cookie.force_login(user)
    assert call(cookie, objects, method, path, body).status_code == status


def test_the_refusal_comes_before_anything_is_changed(user, objects):
    key = APIKeyFactory(owner=user, scopes=["posts:read", "tasks:read"])
    client = key_client(key)
    assert client.delete(f"{API}/posts/{objects['post'].pk}").status_code == 403
    assert client.delete(f"{API}/tasks/{objects['task'].pk}").status_code == 403
    assert client.patch(f"{API}/posts/{objects['post'].pk}", {"content": "edited"}, format="json").status_code == 403
    objects["post"].refresh_from_db()  # still there, unchanged
    assert objects["post"].content != "edited"
    assert type(objects["task"]).objects.filter(pk=objects["task"].pk).exists()


def test_another_users_object_is_still_a_404_for_a_key_with_the_scope(user, other_user):
    key = APIKeyFactory(owner=user, scopes=["tasks:read", "tasks:write"])
    theirs = TaskFactory(owner=other_user)
    assert key_client(key).get(f"{API}/tasks/{theirs.pk}").status_code == 404
    assert key_client(key).delete(f"{API}/tasks/{theirs.pk}").status_code == 404


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/hello/protected"),
        ("post", "/auth/validate"),
        ("get", "/auth/api-keys"),
        ("get", "/auth/api-keys/{key}"),
    ],
)
def test_endpoints_that_need_no_scope(user, method, path):
    key = APIKeyFactory(owner=user, scopes=["results:read"])
    response = getattr(key_client(key), method)(API + path.format(key=key.pk))
    assert response.status_code == 200, response.content


def test_changing_the_profile_needs_a_key_with_every_scope(user):
    almost = APIKeyFactory(owner=user, scopes=[scope for scope in ALL if scope != "results:write"])
    response = key_client(almost).patch(f"{API}/auth/me", {"name": "Mallory"}, format="json")
    assert response.status_code == 403 and response.json() == lacks("results:write")
    user.refresh_from_db()
    assert user.name == "Alice"
    full = APIKeyFactory(owner=user)
    assert key_client(full).patch(f"{API}/auth/me", {"name": "Alicia"}, format="json").status_code == 200


def test_the_user_admin_needs_an_admins_key_with_every_scope(make_user):
    admin = make_user("root", is_staff=True)
    narrow = APIKeyFactory(owner=admin, scopes=["profile:read", "posts:read"])
    response = key_client(narrow).get(f"{API}/users")
    assert response.status_code == 403
    assert response.json() == {
        "detail": "This API key lacks the scopes posts:write, tasks:read, tasks:write, results:read, results:write: "
        "this endpoint needs a key with every scope",
        "code": "insufficient_scope",
    }
    assert key_client(APIKeyFactory(owner=admin)).get(f"{API}/users").status_code == 200


def test_options_describes_the_endpoint_to_any_key(user):
    key = APIKeyFactory(owner=user, scopes=["profile:read"])
    assert key_client(key).options(f"{API}/posts").status_code == 200


# NO ESCALATION: A KEY CANNOT MINT OR REVOKE KEYS
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("held", [["posts:read"], ALL], ids=["scoped", "full"])
def test_a_key_cannot_create_a_key_with_more_scopes_or_any(user, held):
    key = APIKeyFactory(owner=user, scopes=held)
    response = key_client(key).post(KEYS, {"name": "wider", "scopes": ALL}, format="json")
    assert response.status_code == 403
    assert list(APIKey.objects.values_list("pk", flat=True)) == [key.pk]
    assert key_client(key).delete(f"{KEYS}/{key.pk}").status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None


# COST: THE CHECK READS THE KEY ALREADY ON request.auth
# ------------------------------------------------------------------------------


class _Declares(APIView):
    required_scopes = {"GET": "posts:read", "DELETE": "posts:write"}


def test_the_scope_check_runs_no_query(user, django_assert_num_queries):
    stored = APIKeyFactory(owner=user, scopes=["posts:read"])
    key = APIKey.objects.get(pk=stored.pk)  # as authentication hands it over
    factory = APIRequestFactory()
    get, delete = Request(factory.get("/")), Request(factory.delete("/"))
    for request in (get, delete):
        request.user, request.auth = user, key
    with django_assert_num_queries(0):
        assert APIKeyScope().has_permission(get, _Declares()) is True
        with pytest.raises(InsufficientScope, match="lacks the scope posts:write"):
            APIKeyScope().has_permission(delete, _Declares())


def test_the_key_authentication_hands_over_carries_its_scopes(user, django_assert_num_queries):
    stored = APIKeyFactory(owner=user, scopes=["posts:read", "tasks:write"])
    request = Request(APIRequestFactory().get("/", HTTP_X_API_KEY=stored.plaintext))
    with django_assert_num_queries(2):  # the key joined to its owner, and the first last_used
        _, key = APIKeyAuthentication().authenticate(request)
    with django_assert_num_queries(0):
        assert key.scopes == ("posts:read", "tasks:write")


def test_a_refused_request_costs_what_a_no_scope_one_does(user, django_assert_num_queries):
    """The same key, warmed up: a request refused for its scope makes the queries of a request to an
    endpoint that needs none and queries nothing itself (hello/protected), i.e. the check adds none."""
    key = APIKeyFactory(owner=user, scopes=["posts:read"])
    client = key_client(key)
    assert client.get(f"{API}/hello/protected").status_code == 200  # writes last_used once
    with CaptureQueriesContext(connection) as allowed:
        assert client.get(f"{API}/hello/protected").status_code == 200
    with CaptureQueriesContext(connection) as refused:
        assert client.post(f"{API}/posts", {"content": "x"}, format="json").status_code == 403
    assert len(refused) == len(allowed)


# EVERY API-KEY-REACHABLE VIEW DECLARES ITS SCOPE
# ------------------------------------------------------------------------------

# Where a key needs no scope (the API contract names them).
NO_SCOPE_ALLOWED = {
    ("/api/v1/hello/protected", "GET"),
    ("/api/v1/auth/validate", "POST"),
    ("/api/v1/^auth/api-keys$", "GET"),
    ("/api/v1/^auth/api-keys/(?P<pk>[0-9]+)$", "GET"),
}


def _routes(patterns, prefix="/"):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def _operations(callback):
    """(method, view instance set up as for that method) for each operation of a DRF view."""
    cls = getattr(callback, "cls", None)
    if cls is None:
        return
    actions = getattr(callback, "actions", None)
    if actions:
        for method, action in actions.items():
            if method == "head":
                continue  # DRF's GET alias
            view = cls(**callback.initkwargs)
            view.action, view.action_map = action, actions
            yield method.upper(), view
        return
    for method in cls.http_method_names:
        if method not in ("options", "head") and hasattr(cls, method):
            yield method.upper(), cls(**getattr(callback, "initkwargs", {}))


def scope_problems(patterns) -> list[str]:
    """Each API-key-reachable operation that does not go through APIKeyScope with a valid declaration."""
    problems = []
    for route, callback in _routes(patterns):
        for method, view in _operations(callback):
            if not any(issubclass(auth, APIKeyAuthentication) for auth in view.authentication_classes):
                continue
            permissions = view.get_permissions()
            if any(isinstance(p, HasJWT) for p in permissions) or all(isinstance(p, AllowAny) for p in permissions):
                continue  # a key is refused, or the endpoint is public
            name = f"{method} {route} ({type(view).__name__})"
            if not any(isinstance(p, APIKeyScope) for p in permissions):
                problems.append(f"{name}: APIKeyScope is not among its permissions")
            elif not scopes.is_declared(view, method):
                problems.append(f"{name}: declares no scope in required_scopes")
            else:
                declared = scopes.declared_scope(view, method)
                if declared is scopes.NO_SCOPE and (route, method) not in NO_SCOPE_ALLOWED:
                    problems.append(f"{name}: declares NO_SCOPE, which only the contract's few endpoints may")
                elif declared not in (*scopes.ALL_SCOPES, scopes.NO_SCOPE, scopes.FULL_ACCESS):
                    problems.append(f"{name}: declares an unknown scope {declared!r}")
    return problems


def test_every_view_a_key_can_reach_declares_its_scope():
    assert scope_problems(get_resolver().url_patterns) == []


def test_the_walk_finds_a_view_that_forgets(settings):
    from django.urls import path
    from rest_framework.permissions import IsAuthenticated

    class Forgets(APIView):
        def get(self, request):
            return None

    class DropsTheCheck(APIView):
        permission_classes = [IsAuthenticated]
        required_scopes = {"GET": "posts:read"}

        def get(self, request):
            return None

    class Typo(APIView):
        required_scopes = {"GET": "post:read", "DELETE": scopes.NO_SCOPE}

        def get(self, request):
            return None

        def delete(self, request):
            return None

    problems = scope_problems(
        [path("a", Forgets.as_view()), path("b", DropsTheCheck.as_view()), path("c", Typo.as_view())]
    )
    assert problems == [
        "GET /a (Forgets): declares no scope in required_scopes",
        "GET /b (DropsTheCheck): APIKeyScope is not among its permissions",
        "GET /c (Typo): declares an unknown scope 'post:read'",
        "DELETE /c (Typo): declares NO_SCOPE, which only the contract's few endpoints may",
    ]


def test_an_undeclared_operation_refuses_a_scoped_key_and_admits_a_full_one(user):
    class Forgets(APIView):
        def get(self, request):
            from rest_framework.response import Response

            return Response({"ok": True})

    view = Forgets.as_view()
    factory = APIRequestFactory()
    scoped = APIKeyFactory(owner=user, scopes=ALL[:-1])
    assert view(factory.get("/", HTTP_X_API_KEY=scoped.plaintext)).status_code == 403
    assert view(factory.get("/", HTTP_X_API_KEY=APIKeyFactory(owner=user).plaintext)).status_code == 200


# ADMIN AND CLI
# ------------------------------------------------------------------------------


@pytest.fixture
def admin_client(make_user):
    client = Client()
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def test_admin_add_form_offers_the_scopes_all_ticked(admin_client):
    page = admin_client.get(reverse("admin:apikeys_apikey_add")).content.decode()
    for scope in ALL:
        assert f'value="{scope}"' in page
    assert page.count("checked") >= len(ALL)


def test_admin_creates_a_scoped_key(admin_client, user):
    response = admin_client.post(
        reverse("admin:apikeys_apikey_add"), {"owner": user.pk, "name": "ro", "scopes": ["tasks:read", "posts:read"]}
    )
    assert response.status_code == 200, response.content
    key = APIKey.objects.get(name="ro")
    assert key.scopes == ["posts:read", "tasks:read"]
    changelist = admin_client.get(reverse("admin:apikeys_apikey_changelist")).content.decode()
    assert "posts:read, tasks:read" in changelist


def test_admin_refuses_a_key_without_scopes(admin_client, user):
    response = admin_client.post(reverse("admin:apikeys_apikey_add"), {"owner": user.pk, "name": "none"})
    assert response.status_code == 200 and "This field is required." in response.content.decode()
    assert not APIKey.objects.exists()


def test_admin_change_form_shows_scopes_and_cannot_change_them(admin_client, user):
    key = APIKeyFactory(owner=user, name="ro", scopes=["results:read"])
    url = reverse("admin:apikeys_apikey_change", args=[key.pk])
    assert "results:read" in admin_client.get(url).content.decode()
    assert admin_client.post(url, {"name": "renamed", "scopes": ALL}).status_code == 302
    key.refresh_from_db()
    assert key.name == "renamed" and key.scopes == ["results:read"]


def run(*args):
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_cli_creates_a_key_with_repeated_scope(user):
    out, err = run(
        "create_api_key", "--username", "alice", "--name", "cli", "--scope", "tasks:write", "--scope", "tasks:read"
    )
    key = APIKey.objects.get(name="cli")
    assert key.scopes == ["tasks:read", "tasks:write"] and "Scopes: tasks:read, tasks:write" in err
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=out.strip())
    assert client.get(f"{API}/tasks").status_code == 200
    assert client.get(f"{API}/posts").json() == lacks("posts:read")


def test_cli_without_scope_gives_every_scope(user):
    run("create_api_key", "--username", "alice", "--name", "cli")
    assert APIKey.objects.get(name="cli").scopes == ALL


@pytest.mark.parametrize(
    "args,message",
    [
        (["--scope", "posts:delete"], "invalid choice"),
        (["--scope", "posts:read", "--scope", "posts:read"], "only once"),
    ],
)
def test_cli_refuses_bad_scopes(user, args, message):
    with pytest.raises(CommandError, match=message):
        run("create_api_key", "--username", "alice", "--name", "cli", *args)
    assert not APIKey.objects.exists()


def test_cli_help_lists_the_scopes():
    from apikeys.management.commands.create_api_key import Command

    help_text = Command().create_parser("manage.py", "create_api_key").format_help()
    assert "--scope SCOPE" in help_text and all(scope in help_text for scope in ALL)


# MIGRATION
# ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_existing_keys_every_scope(user):
    executor = MigrationExecutor(connection)
    before, after = [("apikeys", "0001_initial")], [("apikeys", "0002_scopes")]
    try:
        executor.migrate(before)
        old_apikey = executor.loader.project_state(before).apps.get_model("apikeys", "APIKey")
        old_apikey.objects.create(owner_id=user.pk, name="old", prefix="sk_old00000", key_hash="0" * 64)
        executor = MigrationExecutor(connection)
        executor.migrate(after)
    finally:
        MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())
    assert APIKey.objects.get(name="old").scopes == ALL
