"""Posts and their votes."""

from django.conf import settings
from django.core.validators import MaxLengthValidator, MinLengthValidator
from django.db import models
from django.db.models.functions import Length
from django.db.models.lookups import GreaterThanOrEqual, LessThanOrEqual
from django.utils import timezone

from config.models import TimeStampedModel

CONTENT_MAX_LENGTH = 10_000


class Post(TimeStampedModel):
    """A short text written by its author, readable by every signed-in user."""

    # No single-column index on author: the composite index below starts with it.
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="posts", db_index=False)
    content = models.TextField(validators=[MinLengthValidator(1), MaxLengthValidator(CONTENT_MAX_LENGTH)])
    # Denormalised count of this post's votes, kept by posts.services.post_vote/post_unvote
    # with F() updates in the vote's own transaction, so a page of posts never counts votes.
    vote_count = models.PositiveIntegerField(default=0)
    # TimeStampedModel's two fields, redefined: without its single-column created_at index (the
    # composite indexes below serve every ordering and filter of the list: one index less to
    # write), and set by the services rather than auto_now/auto_now_add, which read the clock
    # once per field, so a new post would show an updated_at a few microseconds off created_at.
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The list and its cursor: ORDER BY created_at DESC, id DESC [WHERE created_at < cursor].
            models.Index(fields=["-created_at", "-id"], name="posts_post_newest_idx"),
            # ?mine=true and ?author=<username>: the same, within one author.
            models.Index(fields=["author", "-created_at", "-id"], name="posts_post_author_newest_idx"),
        ]
        constraints = [
            # The API validates this too; the database refuses what a script or shell might slip past it.
            models.CheckConstraint(
                condition=models.Q(
                    GreaterThanOrEqual(Length("content"), 1), LessThanOrEqual(Length("content"), CONTENT_MAX_LENGTH)
                ),
                name="posts_post_content_length",
            ),
        ]

    def __str__(self):
        preview = self.content[:40] + ("…" if len(self.content) > 40 else "")
        return f"#{self.pk} {preview}"


class Vote(models.Model):
    """One user's vote for one post; the unique constraint is what makes voting race-free."""

    # The unique (user, post) index serves lookups by user; a separate one would be dead weight.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="votes", db_index=False)
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="votes")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "post"], name="posts_vote_one_per_user_post")]

    def __str__(self):
        return f"vote of user {self.user_id} for post {self.post_id}"
