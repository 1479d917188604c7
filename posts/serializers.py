"""Input validation and output shape of the posts endpoints."""

from rest_framework import serializers

from accounts.models import User
from config.query import QueryBooleanField
from posts.models import CONTENT_MAX_LENGTH, Post


class ContentField(serializers.CharField):
    """Post content, kept verbatim: a JSON string of 1..10000 characters that is not only whitespace.

    DRF's CharField would turn a number into a string and strip whitespace; a post is
    text exactly as written, and a number where text belongs is the client's mistake.
    """

    default_error_messages = {
        "not_a_string": "Must be a string.",
        "blank": "This field may not be blank.",
        "encoding": "Must be valid Unicode text (it contains an unpaired surrogate).",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault("max_length", CONTENT_MAX_LENGTH)
        kwargs.setdefault("help_text", f"1 to {CONTENT_MAX_LENGTH} characters, stored as written.")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        if not data.strip():
            self.fail("blank")
        try:
            # JSON may carry "\ud800", which no database encoding can store: a 400, not a 500.
            data.encode("utf-8")
        except UnicodeEncodeError:
            self.fail("encoding")
        return super().to_internal_value(data)


class PostInputSerializer(serializers.Serializer):
    """What a client may write. Any other key (author, id, vote_count...) is ignored."""

    content = ContentField()


class PostListQuerySerializer(serializers.Serializer):
    """Filters of the post list."""

    mine = QueryBooleanField(required=False, default=False, help_text="Only the caller's own posts.")
    # Checked as the schema states it (at most 150 characters, no NUL), on the value as given: trimming
    # first would accept 151 characters ending in spaces. A username has no spaces, so " bob" is no one's.
    author = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=150,
        help_text="Only posts of this username (any case).",
    )


class PostAuthorSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username"]
        read_only_fields = fields


class PostOutputSerializer(serializers.ModelSerializer):
    author = PostAuthorSerializer(read_only=True)
    voted = serializers.BooleanField(read_only=True, help_text="Whether the caller voted for this post.")

    class Meta:
        model = Post
        fields = ["id", "content", "author", "created_at", "updated_at", "vote_count", "voted"]
        read_only_fields = fields
