"""Reads of the posts app: one query for a page of posts, whatever its size."""

from django.db.models import FilteredRelation, Q, QuerySet, Subquery, Value
from django.db.models.functions import Lower

from accounts.models import User
from config.errors import NotFound
from posts.models import Post

# What a post's representation needs; the author's password hash and the rest stay in the database.
_POST_COLUMNS = ("id", "content", "created_at", "updated_at", "vote_count", "author__id", "author__username")


def post_list(*, viewer: User, mine: bool = False, author: str | None = None) -> QuerySet[Post]:
    """Posts newest first, each with its author joined and `voted` (did `viewer` vote for it) annotated.

    `vote_count` is a column (maintained by the vote services), so neither counting nor a
    GROUP BY is needed. `voted` is a LEFT JOIN to the viewer's vote, at most one row per post
    by the (user, post) unique constraint: one index probe per post of the page. (An EXISTS
    subquery reads the same, but PostgreSQL plans it as a hashed subplan over *all* the
    viewer's votes, since it costs it against the whole table rather than the page: a page
    would then cost as much as the viewer has ever voted.) The plain list walks the
    (-created_at, -id) index, the author filters the (author, -created_at, -id) one.
    """
    posts = (
        Post.objects.select_related("author")
        .only(*_POST_COLUMNS)
        .annotate(viewer_vote=FilteredRelation("votes", condition=Q(votes__user=viewer.pk)))
        .annotate(voted=Q(viewer_vote__isnull=False))
        .order_by("-created_at", "-id")
    )
    if mine:
        posts = posts.filter(author=viewer.pk)
    if author:
        # Usernames are unique regardless of case (a unique index on lower(username)). A scalar
        # subquery, run once, turns the name into an id, so the author index serves the page.
        author_id = (
            User.objects.annotate(username_lower=Lower("username"))
            .filter(username_lower=Lower(Value(author)))
            .values("pk")[:1]
        )
        posts = posts.filter(author_id=Subquery(author_id))
    return posts


def post_detail(*, viewer: User, post_id: int) -> Post:
    """One post as post_list shows it. Raises NotFound (404) when it does not exist (or no longer does)."""
    try:
        return post_list(viewer=viewer).get(pk=post_id)
    except Post.DoesNotExist:
        raise NotFound("Not found.") from None
