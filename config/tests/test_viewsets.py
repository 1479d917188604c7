"""The shared base of the API's views (config/viewsets.py), through the endpoints that use it."""

import uuid

import pytest
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.http import Http404

from apikeys.tests.factories import APIKeyFactory
from config.commands import service_errors_as_command_errors
from config.errors import Conflict
from config.viewsets import BIGINT_MAX, is_bigint_id, require_id
from posts.tests.factories import PostFactory
from tasks.models import Task
from tasks.tests.factories import TaskFactory

pytestmark = pytest.mark.django_db

# One detail URL of each view on the base, with the id left open.
DETAIL_URLS = [
    "/api/v1/tasks/{}",
    "/api/v1/tasks/{}/cancel",
    "/api/v1/auth/api-keys/{}",
    "/api/v1/posts/{}",
    "/api/v1/posts/{}/vote",
    "/api/v1/results/{}",
    "/api/v1/results/{}/gif",
]
MALFORMED_IDS = ["abc", "1.5", "+1", "-1", "%20", "١", "1e3", str(BIGINT_MAX + 1), "9" * 30]


def assert_json_404(response):
    assert response.status_code == 404, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    assert "detail" in response.json()


@pytest.mark.parametrize("bad_id", MALFORMED_IDS)
@pytest.mark.parametrize("url", DETAIL_URLS)
@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_a_malformed_or_out_of_range_id_is_a_json_404(auth_client, user, url, bad_id, method):
    TaskFactory(owner=user)  # id 1 may exist: "+1" or "1.5" must not find it
    response = getattr(auth_client, method)(url.format(bad_id))
    if response.status_code == 405:  # the method does not apply to that URL; the others cover it
        return
    assert_json_404(response)


@pytest.mark.parametrize("spelling", ["+{}", "%20{}", "{}%20", "{}.0", "{}_0"])
@pytest.mark.parametrize(("method", "url"), [("get", "/api/v1/posts/{}"), ("post", "/api/v1/posts/{}/vote")])
def test_an_existing_id_spelled_another_way_is_a_json_404(auth_client, user, method, url, spelling):
    # Posts route any segment to the view, and int() would read "+7" or " 7" as 7: the base refuses them.
    post = PostFactory(author=user)
    assert_json_404(getattr(auth_client, method)(url.format(spelling.format(post.pk))))


@pytest.mark.parametrize("bad_id", ["abc", "1", "0" * 33, "-" * 36, str(uuid.uuid4()) + "0"])
def test_a_malformed_session_id_is_a_json_404(auth_client, bad_id):
    assert_json_404(auth_client.delete(f"/api/v1/auth/sessions/{bad_id}"))


def test_an_unrouted_api_url_is_a_json_404_and_other_urls_keep_djangos_page(api_client):
    assert_json_404(api_client.get("/api/v1/no-such-endpoint"))
    response = api_client.get("/no-such-page")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    ("url", "parameter"),
    [("/api/v1/tasks?status=bogus", "status"), ("/api/v1/posts?mine=maybe", "mine")],
)
def test_a_bad_list_parameter_is_a_400_naming_it(auth_client, url, parameter):
    response = auth_client.get(url)
    assert response.status_code == 400
    assert list(response.json()) == [parameter]


@pytest.mark.parametrize("url", ["/api/v1/tasks?colour=red", "/api/v1/posts?colour=red", "/api/v1/auth/api-keys?x=1"])
def test_an_unknown_list_parameter_is_ignored(auth_client, url):
    assert auth_client.get(url).status_code == 200


def test_the_list_filter_reaches_the_selector(auth_client, user):
    TaskFactory(owner=user, status="failed")
    TaskFactory(owner=user)
    response = auth_client.get("/api/v1/tasks?status=failed")
    assert [task["status"] for task in response.json()["results"]] == ["failed"]


def test_another_users_task_is_a_404_not_a_403_and_stays(auth_client, other_user):
    theirs = TaskFactory(owner=other_user)
    assert_json_404(auth_client.get(f"/api/v1/tasks/{theirs.pk}"))
    assert_json_404(auth_client.delete(f"/api/v1/tasks/{theirs.pk}"))
    assert Task.objects.filter(pk=theirs.pk).exists()


def test_another_users_api_key_is_a_404_not_a_403_and_stays_active(auth_client, other_user):
    theirs = APIKeyFactory(owner=other_user)
    assert_json_404(auth_client.get(f"/api/v1/auth/api-keys/{theirs.pk}"))
    assert_json_404(auth_client.delete(f"/api/v1/auth/api-keys/{theirs.pk}"))
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_another_users_task_is_not_in_the_list(auth_client, user, other_user):
    mine = TaskFactory(owner=user)
    TaskFactory(owner=other_user)
    assert [task["id"] for task in auth_client.get("/api/v1/tasks").json()["results"]] == [mine.pk]


def test_respond_serializes_with_the_views_output_serializer(auth_client, user):
    post = PostFactory(author=user)
    response = auth_client.post(f"/api/v1/posts/{post.pk}/vote")
    assert response.status_code == 201
    assert response.json()["id"] == post.pk and response.json()["voted"] is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", True),
        ("7", True),
        (str(BIGINT_MAX), True),
        (str(BIGINT_MAX + 1), False),
        ("", False),
        (" 7", False),
        ("+7", False),
        ("7_0", False),
        ("١", False),
        ("0x1", False),
    ],
)
def test_is_bigint_id(value, expected):
    assert is_bigint_id(value) is expected


def test_require_id():
    assert require_id("42") == 42 and require_id(42) == 42
    with pytest.raises(Http404):
        require_id(str(BIGINT_MAX + 1))


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (Conflict("Username taken"), "Username taken"),
        (
            ValidationError({"name": ["Too long."], "expires_days": ["Too big.", "Odd."]}),
            "name: Too long.; expires_days: Too big. Odd.",
        ),
        (ValidationError("Just wrong."), "Just wrong."),
        (ValidationError({"__all__": ["Both given."]}), "Both given."),
    ],
)
def test_service_errors_become_one_line_command_errors(error, message):
    with pytest.raises(CommandError) as raised, service_errors_as_command_errors():
        raise error
    assert str(raised.value) == message
