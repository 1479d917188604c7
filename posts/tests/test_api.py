"""Posts CRUD over HTTP: shape, ownership for every method, mass assignment, validation."""

import pytest

from posts.models import Post
from posts.tests.factories import PostFactory

pytestmark = pytest.mark.django_db

POSTS = "/api/v1/posts"
POST_FIELDS = {"id", "content", "author", "created_at", "updated_at", "vote_count", "voted"}


def detail(post_or_id) -> str:
    return f"{POSTS}/{getattr(post_or_id, 'pk', post_or_id)}"


@pytest.fixture
def bob_client(other_user, login, client_for):
    return client_for(login(other_user).access)


def test_create_returns_the_post_with_the_caller_as_author(auth_client, user):
    response = auth_client.post(POSTS, {"content": "Hello, posts!"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == POST_FIELDS
    assert body["content"] == "Hello, posts!"
    assert body["author"] == {"id": user.pk, "username": "alice"}
    assert body["vote_count"] == 0 and body["voted"] is False
    assert body["updated_at"] == body["created_at"]  # never edited
    post = Post.objects.get(pk=body["id"])
    assert post.author == user and post.content == "Hello, posts!"


def test_create_ignores_author_id_and_vote_count_in_the_body(auth_client, user, other_user):
    existing = PostFactory(author=other_user)
    response = auth_client.post(
        POSTS,
        {
            "content": "mine",
            "author": other_user.pk,
            "author_id": other_user.pk,
            "id": existing.pk,
            "vote_count": 1000,
            "voted": True,
            "created_at": "2000-01-01T00:00:00Z",
        },
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["author"]["id"] == user.pk
    assert body["id"] != existing.pk
    assert body["vote_count"] == 0 and body["voted"] is False
    assert not body["created_at"].startswith("2000")
    existing.refresh_from_db()
    assert existing.content != "mine" and existing.author == other_user
    assert Post.objects.get(pk=body["id"]).vote_count == 0


def test_update_ignores_author_and_vote_count_in_the_body(auth_client, user, other_user):
    post = PostFactory(author=user)
    response = auth_client.patch(
        detail(post), {"content": "edited", "author": other_user.pk, "vote_count": 99}, format="json"
    )
    assert response.status_code == 200
    post.refresh_from_db()
    assert (post.content, post.author_id, post.vote_count) == ("edited", user.pk, 0)


def test_content_is_stored_verbatim(auth_client):
    content = "  indented\n\tand trailing  "
    response = auth_client.post(POSTS, {"content": content}, format="json")
    assert response.status_code == 201
    assert response.json()["content"] == content


def test_content_of_exactly_10000_characters_is_accepted(auth_client):
    response = auth_client.post(POSTS, {"content": "é" * 10_000}, format="json")
    assert response.status_code == 201
    assert len(response.json()["content"]) == 10_000


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "This field is required."),
        ({"content": ""}, "This field may not be blank."),
        ({"content": "   \n\t"}, "This field may not be blank."),
        ({"content": "x" * 10_001}, "Ensure this field has no more than 10000 characters."),
        ({"content": None}, "This field may not be null."),
        ({"content": 12345}, "Must be a string."),
        ({"content": True}, "Must be a string."),
        ({"content": ["a"]}, "Must be a string."),
        ({"content": {"text": "a"}}, "Must be a string."),
        ({"content": "nul \x00 byte"}, "Null characters are not allowed."),
    ],
)
def test_bad_content_is_a_400_with_a_field_message(auth_client, user, payload, message):
    post = PostFactory(author=user, content="before")
    for method, url in (("post", POSTS), ("put", detail(post)), ("patch", detail(post))):
        if method == "patch" and payload == {}:
            continue  # PATCH without content is a no-op, tested below
        response = getattr(auth_client, method)(url, payload, format="json")
        assert response.status_code == 400, (method, response.content)
        assert response.json() == {"content": [message]}, method
    post.refresh_from_db()
    assert post.content == "before"
    assert Post.objects.count() == 1


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_unpaired_surrogate_is_a_400_not_a_500(auth_client, user, method):
    # Valid JSON, but no database (or UTF-8 encoder) can store it.
    url = POSTS if method == "POST" else detail(PostFactory(author=user))
    response = auth_client.generic(
        method, url, '{"content": "lone \\ud800 surrogate"}', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json() == {"content": ["Must be valid Unicode text (it contains an unpaired surrogate)."]}


@pytest.mark.parametrize("body", ['["content"]', '"just a string"', "42", "null", "{not json"])
def test_a_body_that_is_not_an_object_is_a_400(auth_client, body):
    response = auth_client.generic("POST", POSTS, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()  # a message, not an empty body


def test_patch_without_content_changes_nothing(auth_client, user):
    post = PostFactory(author=user, content="same")
    response = auth_client.patch(detail(post), {}, format="json")
    assert response.status_code == 200
    assert response.json()["content"] == "same"


def test_put_replaces_the_content_and_moves_updated_at(auth_client, user):
    post = PostFactory(author=user, content="old")
    response = auth_client.put(detail(post), {"content": "new"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["content"] == "new" and body["id"] == post.pk
    assert body["updated_at"] > body["created_at"]


def test_retrieve_shows_any_users_post(auth_client, other_user):
    post = PostFactory(author=other_user, content="bob's")
    response = auth_client.get(detail(post))
    assert response.status_code == 200
    assert response.json()["author"] == {"id": other_user.pk, "username": "bob"}


def test_the_author_may_delete(auth_client, user):
    post = PostFactory(author=user)
    assert auth_client.delete(detail(post)).status_code == 204
    assert not Post.objects.filter(pk=post.pk).exists()
    assert auth_client.get(detail(post)).status_code == 404


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_someone_elses_post_is_403_for_writes_and_unchanged(bob_client, user, method):
    post = PostFactory(author=user, content="alice's words")
    response = getattr(bob_client, method)(detail(post), {"content": "bob was here"}, format="json")
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Only the author of this post may change or delete it.",
        "code": "permission_denied",
    }
    post.refresh_from_db()
    assert post.content == "alice's words"


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_non_author_gets_403_even_with_an_invalid_body(bob_client, user, method):
    # Ownership is decided first, so a stranger learns nothing from validation messages.
    post = PostFactory(author=user)
    response = getattr(bob_client, method)(detail(post), {"content": ""}, format="json")
    assert response.status_code == 403


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_missing_post_is_404(auth_client, method):
    response = getattr(auth_client, method)(detail(987654), {"content": "x"}, format="json")
    assert response.status_code == 404
    assert set(response.json()) == {"detail", "code"}


@pytest.mark.parametrize(
    "post_id", ["abc", "1.5", "-1", "+1", "1e3", "0x1", "%20", "١", "99999999999999999999999", "1%3B", "null"]
)
@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_non_numeric_or_out_of_range_id_is_a_json_404(auth_client, user, post_id, method):
    PostFactory(author=user)
    response = getattr(auth_client, method)(f"{POSTS}/{post_id}", {"content": "x"}, format="json")
    assert response.status_code == 404, response.content
    assert "detail" in response.json()


@pytest.mark.parametrize("post_id", ["abc", "99999999999999999999999"])
@pytest.mark.parametrize("method", ["post", "delete"])
def test_vote_on_a_non_numeric_id_is_404(auth_client, post_id, method):
    assert getattr(auth_client, method)(f"{POSTS}/{post_id}/vote").status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", POSTS),
        ("post", POSTS),
        ("get", f"{POSTS}/1"),
        ("put", f"{POSTS}/1"),
        ("patch", f"{POSTS}/1"),
        ("delete", f"{POSTS}/1"),
        ("post", f"{POSTS}/1/vote"),
        ("delete", f"{POSTS}/1/vote"),
    ],
)
def test_every_endpoint_needs_credentials(api_client, user, method, path):
    PostFactory(author=user, pk=1)
    response = getattr(api_client, method)(path, {"content": "x"}, format="json")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert Post.objects.get(pk=1).content != "x"


def test_an_invalid_token_is_401(client_for, user):
    post = PostFactory(author=user)
    assert client_for("not-a-jwt").get(detail(post)).status_code == 401


def test_a_deactivated_author_can_no_longer_write(auth_client, user):
    from accounts import services as account_services

    post = PostFactory(author=user)
    account_services.user_deactivate(user=user)
    assert auth_client.patch(detail(post), {"content": "x"}, format="json").status_code == 401


def test_deleting_a_post_deletes_its_votes(auth_client, user, other_user):
    from posts import services
    from posts.models import Vote

    post = PostFactory(author=user)
    services.post_vote(post=post, user=other_user)
    assert auth_client.delete(detail(post)).status_code == 204
    assert not Vote.objects.filter(post_id=post.pk).exists()


def test_openapi_schema_documents_the_posts_endpoints(auth_client):
    response = auth_client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/posts"])
    assert {"get", "put", "patch", "delete"} <= set(paths["/api/v1/posts/{id}"])
    assert {"post", "delete"} <= set(paths["/api/v1/posts/{id}/vote"])
    list_parameters = {p["name"] for p in paths["/api/v1/posts"]["get"]["parameters"]}
    assert {"cursor", "page_size", "mine", "author"} <= list_parameters
