"""manage.py seed_posts: consistent data, fast paths on PostgreSQL and elsewhere."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.models import Count

from accounts.models import User
from posts.models import Post, Vote
from posts.tests.factories import PostFactory

pytestmark = pytest.mark.django_db(transaction=True)


def seed(*args) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("seed_posts", *args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def assert_consistent():
    """Each post's vote_count is its number of votes, and no two posts share a created_at."""
    counted = dict(Vote.objects.values("post").annotate(n=Count("*")).values_list("post", "n"))
    for post_id, vote_count in Post.objects.values_list("pk", "vote_count"):
        assert vote_count == counted.get(post_id, 0), post_id
    assert Post.objects.values("created_at").distinct().count() == Post.objects.count()


def test_seed_adds_posts_votes_and_users_with_consistent_counts():
    output = seed("--posts", "300", "--users", "12", "--votes-per-post", "3", "--batch-size", "70", "--seed", "7")
    assert Post.objects.count() == 300
    assert User.objects.filter(username__startswith="seed").count() == 12
    assert Vote.objects.count() > 300  # about 3 a post
    assert_consistent()
    assert "Added 300 posts" in output and "100.0%" in output  # the progress bar reached its end


def test_seed_appends_and_new_posts_get_fresh_ids(user, auth_client):
    PostFactory(author=user)
    seed("--posts", "50", "--users", "5", "--seed", "1")
    seed("--posts", "50", "--users", "5", "--seed", "2")  # reuses the pool of seed users
    assert Post.objects.count() == 101
    assert User.objects.filter(username__startswith="seed").count() == 5
    assert_consistent()
    # The id sequence moved past the seeded ids: the API can still create posts.
    assert auth_client.post("/api/v1/posts", {"content": "after seeding"}, format="json").status_code == 201


def test_seeded_users_cannot_log_in():
    seed("--posts", "1", "--users", "2")
    for seeded in User.objects.filter(username__startswith="seed"):
        assert not seeded.has_usable_password()


def test_reset_deletes_every_post_first(user):
    PostFactory(author=user)
    seed("--posts", "20", "--users", "3", "--reset")
    assert Post.objects.count() == 20
    assert not Post.objects.filter(author=user).exists()
    assert_consistent()


def test_seeded_posts_page_through_the_api(auth_client):
    seed("--posts", "45", "--users", "4", "--seed", "3")
    seen, url = [], "/api/v1/posts?page_size=10"
    while url:
        body = auth_client.get(url).json()
        seen += [p["id"] for p in body["results"]]
        url = body["next"]
    expected = list(Post.objects.order_by("-created_at", "-id").values_list("pk", flat=True))
    assert seen == expected and len(seen) == 45


@pytest.mark.parametrize(
    "args", [["--posts", "-1"], ["--users", "0"], ["--users", "3", "--votes-per-post", "4"], ["--spacing", "0"]]
)
def test_bad_arguments_are_refused(args):
    with pytest.raises(CommandError):
        call_command("seed_posts", *args, stdout=io.StringIO(), stderr=io.StringIO())


@pytest.mark.postgres
def test_postgres_seeding_uses_copy():
    assert "(COPY)" in seed("--posts", "10", "--users", "2")
    assert connection.vendor == "postgresql"


def _schema(cursor) -> list:
    cursor.execute(
        """
        SELECT indexdef FROM pg_indexes WHERE tablename IN ('posts_post', 'posts_vote')
        UNION ALL
        SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
        WHERE conrelid IN ('posts_post'::regclass, 'posts_vote'::regclass)
        ORDER BY 1
        """
    )
    return [row[0] for row in cursor.fetchall()]


@pytest.mark.postgres
def test_bulk_load_puts_back_every_index_and_constraint(auth_client):
    with connection.cursor() as cursor:
        before = _schema(cursor)
    output = seed("--posts", "120", "--users", "6", "--reset", "--batch-size", "50")
    with connection.cursor() as cursor:
        assert _schema(cursor) == before
        cursor.execute("SHOW session_replication_role")
        assert cursor.fetchone()[0] == "origin"  # the switch ended with the transaction
    assert "Built 4 indexes" in output
    assert_consistent()
    # The constraints work again: a second vote of the same user is refused, the API pages the data.
    post = Post.objects.first()
    voter = User.objects.filter(username__startswith="seed").exclude(votes__post=post).first()
    from posts import services

    assert services.post_vote(post=post, user=voter) is True
    assert services.post_vote(post=post, user=voter) is False
    assert auth_client.get("/api/v1/posts?page_size=100").json()["next"]


@pytest.mark.postgres
def test_the_reference_check_of_the_bulk_load_finds_orphans(user):
    from posts.management.commands.seed_posts import Command

    post = PostFactory(author=user)
    # The error rolls the transaction back, orphan and all.
    with (
        pytest.raises(CommandError, match="Vote.post refers to a missing Post"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SET LOCAL session_replication_role = replica")  # as the bulk load does
        cursor.execute(
            "INSERT INTO posts_vote (user_id, post_id, created_at) VALUES (%s, %s, now())", [user.pk, post.pk + 1000]
        )
        Command._check_references(cursor)
    assert not Vote.objects.exists()
