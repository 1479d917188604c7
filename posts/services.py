"""Every write of the posts app: posts and votes."""

from django.db import IntegrityError, transaction
from django.db.models import Count, F, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User
from config.errors import NotFound
from posts.models import Post, Vote

NO_VOTE = "You have not voted for this post."


def _validate(post: Post) -> None:
    # Field validators only (content length): the author is the caller's own user, and the
    # database enforces the check constraint again, so neither is worth a query here.
    post.full_clean(exclude=["author"], validate_unique=False, validate_constraints=False)


@transaction.atomic
def post_create(*, author: User, content: str) -> Post:
    """A new post by `author`: whoever calls the API, never what a request body claims."""
    now = timezone.now()
    post = Post(author=author, content=content, created_at=now, updated_at=now)
    _validate(post)
    post.save()
    return post


@transaction.atomic
def post_update(*, post: Post, content: str) -> Post:
    """Replace the content. Who may do it is the caller's rule (the API: the author; the admin: staff)."""
    post.content = content
    post.updated_at = timezone.now()
    _validate(post)
    post.save(update_fields=["content", "updated_at"])
    return post


# Lock order, the same in every write below: the post's row first, then vote rows. A vote,
# an unvote and a deletion of the same post therefore queue on that row instead of
# deadlocking, and a deletion never misses a vote committed while it was collecting them.


def _lock(post: Post) -> bool:
    """Lock the post's row until the end of the transaction; False when it no longer exists."""
    return Post.objects.select_for_update().filter(pk=post.pk).values_list("pk", flat=True).first() is not None


@transaction.atomic
def post_delete(*, post: Post) -> None:
    """Delete a post and, by cascade, its votes."""
    if _lock(post):
        post.delete()


def post_vote(*, post: Post, user: User) -> bool:
    """Record `user`'s vote for `post`. True when this call cast it, False when it was already there.

    Race-free by the database: the INSERT is attempted and the unique constraint on
    (user, post) refuses the second of two concurrent votes, whose IntegrityError means
    "already voted" and rolls back its count increment. Checking first and inserting after
    would let both requests through the check.
    """
    try:
        with transaction.atomic():
            # One UPDATE, so concurrent votes add up and none is lost; it also takes the row lock (see above).
            if not Post.objects.filter(pk=post.pk).update(vote_count=F("vote_count") + 1):
                raise NotFound("Not found.")  # deleted since the caller read it
            Vote.objects.create(user=user, post=post)
    except IntegrityError:
        # Only the unique constraint can fail here: the post row is ours until commit.
        return False
    return True


@transaction.atomic
def post_unvote(*, post: Post, user: User) -> None:
    """Withdraw `user`'s vote for `post`; NotFound when there is none (also for the loser of two concurrent unvotes)."""
    if not _lock(post):
        raise NotFound("Not found.")
    deleted, _ = Vote.objects.filter(user=user, post_id=post.pk).delete()
    if not deleted:
        raise NotFound(NO_VOTE)
    Post.objects.filter(pk=post.pk).update(vote_count=F("vote_count") - 1)


@transaction.atomic
def post_vote_counts_recompute(*, post_ids=None) -> int:
    """Set vote_count from the votes table (after a bulk load or a repair). Returns the rows changed."""
    counted = Vote.objects.filter(post=OuterRef("pk")).order_by().values("post").annotate(n=Count("*")).values("n")[:1]
    posts = Post.objects.all() if post_ids is None else Post.objects.filter(pk__in=post_ids)
    return posts.update(vote_count=Coalesce(Subquery(counted), 0))
