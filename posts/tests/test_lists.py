"""The post list: newest first, cursor pages, filters, `voted`, and a constant number of queries."""

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from posts import services
from posts.models import Post
from posts.tests.factories import PostFactory

pytestmark = pytest.mark.django_db

POSTS = "/api/v1/posts"


def make_posts(author, count, *, start=None, step=timedelta(seconds=1)):
    """`count` posts by `author`, oldest first, `step` apart (bulk: one INSERT)."""
    start = start or timezone.now() - count * step
    posts = Post.objects.bulk_create([Post(author=author, content=f"post {i}") for i in range(count)])
    for i, post in enumerate(posts):
        Post.objects.filter(pk=post.pk).update(created_at=start + i * step)
    return [Post.objects.get(pk=p.pk) for p in posts]


def ids(response) -> list[int]:
    return [post["id"] for post in response.json()["results"]]


def follow(client, url) -> list[int]:
    """Every id of every page, following `next`."""
    seen = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        seen += ids(response)
        url = response.json()["next"]
    return seen


def newest_first(posts) -> list[int]:
    return [p.pk for p in sorted(posts, key=lambda p: (p.created_at, p.pk), reverse=True)]


def test_list_is_newest_first_with_a_cursor_page_shape(auth_client, user, other_user):
    posts = make_posts(user, 3) + make_posts(other_user, 3)
    response = auth_client.get(POSTS)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"next", "previous", "results"}
    assert body["next"] is None and body["previous"] is None
    assert ids(response) == newest_first(posts)


def test_every_signed_in_user_sees_every_post(auth_client, user, make_user):
    others = [make_user() for _ in range(3)]
    posts = [PostFactory(author=author) for author in [user, *others]]
    assert sorted(ids(auth_client.get(POSTS))) == sorted(p.pk for p in posts)


def test_cursor_pages_visit_every_post_once_in_order(auth_client, user, other_user):
    posts = make_posts(user, 23) + make_posts(other_user, 20, step=timedelta(seconds=1, microseconds=7))
    assert follow(auth_client, f"{POSTS}?page_size=5") == newest_first(posts)


def test_posts_created_in_the_same_instant_are_paged_by_id(auth_client, user):
    # Ties on created_at are broken by id: nothing is skipped or repeated across pages.
    posts = make_posts(user, 12, step=timedelta(0))
    assert follow(auth_client, f"{POSTS}?page_size=5") == sorted((p.pk for p in posts), reverse=True)


def test_previous_link_goes_back(auth_client, user):
    make_posts(user, 10)
    first = auth_client.get(f"{POSTS}?page_size=4").json()
    second = auth_client.get(first["next"]).json()
    back = auth_client.get(second["previous"]).json()
    assert [p["id"] for p in back["results"]] == [p["id"] for p in first["results"]]


def test_page_size_is_capped_at_100(auth_client, user):
    make_posts(user, 105)
    assert len(ids(auth_client.get(f"{POSTS}?page_size=500"))) == 100
    assert len(ids(auth_client.get(POSTS))) == 20


def test_new_posts_do_not_shift_a_cursor_page(auth_client, user):
    make_posts(user, 10)
    first = auth_client.get(f"{POSTS}?page_size=4").json()
    expected = ids(auth_client.get(first["next"]))
    PostFactory(author=user)  # newer than everything
    assert ids(auth_client.get(first["next"])) == expected


def test_mine_lists_only_the_callers_posts(auth_client, user, other_user):
    mine = make_posts(user, 4)
    make_posts(other_user, 4)
    response = auth_client.get(f"{POSTS}?mine=true")
    assert ids(response) == newest_first(mine)
    assert len(ids(auth_client.get(f"{POSTS}?mine=false"))) == 8


def test_author_filter_matches_the_username_in_any_case(auth_client, user, other_user):
    make_posts(user, 2)
    bobs = make_posts(other_user, 3)
    assert ids(auth_client.get(f"{POSTS}?author=bob")) == newest_first(bobs)
    assert ids(auth_client.get(f"{POSTS}?author=BoB")) == newest_first(bobs)
    assert ids(auth_client.get(f"{POSTS}?author=nobody")) == []
    assert len(ids(auth_client.get(f"{POSTS}?author="))) == 5  # blank: no filter
    # The value as given, spaces included (the schema's string): no username has any.
    assert ids(auth_client.get(f"{POSTS}?author=bob%20")) == []


def test_mine_and_author_together_intersect(auth_client, user, other_user):
    make_posts(user, 2)
    make_posts(other_user, 2)
    assert ids(auth_client.get(f"{POSTS}?mine=true&author=bob")) == []
    assert len(ids(auth_client.get(f"{POSTS}?mine=true&author=alice"))) == 2


def test_filters_survive_into_the_next_link(auth_client, user, other_user):
    bobs = make_posts(other_user, 7)
    make_posts(user, 7)
    first = auth_client.get(f"{POSTS}?author=bob&page_size=3").json()
    assert parse_qs(urlsplit(first["next"]).query)["author"] == ["bob"]
    assert follow(auth_client, f"{POSTS}?author=bob&page_size=3") == newest_first(bobs)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param("mine=maybe", "mine", id="mine-not-boolean"),
        pytest.param("author=" + "x" * 151, "author", id="author-too-long"),
        # Over the schema's maxLength of 150 however much of it is spaces (once accepted: trimmed to 1).
        pytest.param("author=x" + "%20" * 150, "author", id="author-too-long-with-spaces"),
        pytest.param("author=%00", "author", id="author-nul"),
    ],
)
def test_bad_filters_are_400(auth_client, query, field):
    response = auth_client.get(f"{POSTS}?{query}")
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",  # not a cursor at all
        "cD1ub3QtYS1kYXRl",  # p=not-a-date: a position that is no time
        "cD05OTk5LTk5LTk5",  # p=9999-99-99
        "cD0A",  # p=NUL
    ],
)
def test_a_bad_cursor_is_a_400_naming_the_cursor(auth_client, user, cursor):
    make_posts(user, 3)
    response = auth_client.get(f"{POSTS}?cursor={cursor}")
    assert response.status_code == 400, response.content
    assert "Invalid cursor" in response.json()["cursor"][0]


def test_voted_and_vote_count_are_per_caller(auth_client, user, other_user, make_user):
    voted_by_alice, voted_by_bob, untouched = make_posts(other_user, 3)
    services.post_vote(post=voted_by_alice, user=user)
    services.post_vote(post=voted_by_bob, user=other_user)
    services.post_vote(post=voted_by_bob, user=make_user())
    by_id = {p["id"]: p for p in auth_client.get(POSTS).json()["results"]}
    assert (by_id[voted_by_alice.pk]["voted"], by_id[voted_by_alice.pk]["vote_count"]) == (True, 1)
    assert (by_id[voted_by_bob.pk]["voted"], by_id[voted_by_bob.pk]["vote_count"]) == (False, 2)
    assert (by_id[untouched.pk]["voted"], by_id[untouched.pk]["vote_count"]) == (False, 0)


def test_the_list_shows_each_post_once_however_many_votes_it_has(auth_client, user, make_user):
    # `voted` joins the caller's vote only: other users' votes must not multiply the rows.
    post = PostFactory(author=user)
    for _ in range(5):
        services.post_vote(post=post, user=make_user())
    services.post_vote(post=post, user=user)
    body = auth_client.get(POSTS).json()
    assert [(p["id"], p["vote_count"], p["voted"]) for p in body["results"]] == [(post.pk, 6, True)]


@pytest.mark.parametrize("query", ["", "mine=true&", "author=alice&"])
def test_a_page_of_50_costs_the_same_queries_as_a_page_of_5(
    auth_client, user, make_user, django_assert_num_queries, query
):
    # Many authors and votes, so that an N+1 on either would show.
    authors = [user, *(make_user() for _ in range(9))]
    posts = [PostFactory(author=authors[i % len(authors)] if not query else user) for i in range(60)]
    for post in posts[::2]:
        services.post_vote(post=post, user=user)
        services.post_vote(post=post, user=authors[1])
    auth_client.get(POSTS)  # warm: the login session is now cached, as in production with Redis

    with django_assert_num_queries(1):  # the page itself: posts, authors and votes in one SELECT
        small = auth_client.get(f"{POSTS}?{query}page_size=5")
    with django_assert_num_queries(1):
        large = auth_client.get(f"{POSTS}?{query}page_size=50")
    with django_assert_num_queries(1):
        deeper = auth_client.get(large.json()["next"])
    assert (len(ids(small)), len(ids(large)), len(ids(deeper))) == (5, 50, 10)
    assert any(p["voted"] for p in large.json()["results"])
    assert {p["author"]["username"] for p in large.json()["results"]} <= {a.username for a in authors}


def test_retrieve_costs_one_query(auth_client, user, django_assert_num_queries):
    post = PostFactory(author=user)
    auth_client.get(POSTS)
    with django_assert_num_queries(1):
        assert auth_client.get(f"{POSTS}/{post.pk}").status_code == 200
