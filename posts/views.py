"""Posts endpoints: thin views over posts.services and posts.selectors."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from config import scopes
from config.pagination import CursorPagination
from config.permissions import APIKeyScope
from config.viewsets import APIViewSet, validated
from posts import selectors, services
from posts.permissions import IsAuthorOrReadOnly
from posts.serializers import PostInputSerializer, PostListQuerySerializer, PostOutputSerializer

NOT_AUTHOR = OpenApiResponse(description="Not the author of the post")
# Every post is visible to every signed-in user, so a 404 here only means there is no such post.
NO_SUCH_POST = OpenApiResponse(description="No such post")


@extend_schema(tags=["posts"])
@extend_schema_view(
    retrieve=extend_schema(responses={200: PostOutputSerializer, 404: NO_SUCH_POST}),
)
class PostViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, APIViewSet):
    """Posts: every signed-in user reads them all, only the author changes or deletes one; one vote per user."""

    serializer_class = PostOutputSerializer
    permission_classes = [IsAuthenticated, APIKeyScope, IsAuthorOrReadOnly]
    required_scopes = {
        "list": scopes.POSTS_READ,
        "retrieve": scopes.POSTS_READ,
        **dict.fromkeys(["create", "update", "partial_update", "destroy", "vote", "unvote"], scopes.POSTS_WRITE),
    }
    pagination_class = CursorPagination
    list_query_serializer_class = PostListQuerySerializer
    # Wider than the base's digits, as published before the base existed: any segment reaches get_object()
    # (a JSON 404 for a malformed id, after authentication), and the schema documents this pattern.
    lookup_value_regex = "[^/]+"

    def caller_queryset(self, user, **filters):
        return selectors.post_list(viewer=user, **filters)

    @extend_schema(request=PostInputSerializer, responses={201: PostOutputSerializer})
    def create(self, request):
        post = services.post_create(author=request.user, **validated(PostInputSerializer, request.data))
        return self.respond(selectors.post_detail(viewer=request.user, post_id=post.pk), status=status.HTTP_201_CREATED)

    @extend_schema(
        request=PostInputSerializer, responses={200: PostOutputSerializer, 403: NOT_AUTHOR, 404: NO_SUCH_POST}
    )
    def update(self, request, pk=None):
        post = self.get_object()  # 404, then 403 for a non-author, before the body is looked at
        changes = validated(PostInputSerializer, request.data, partial=request.method == "PATCH")
        if changes:
            post = services.post_update(post=post, **changes)
        return self.respond(post)

    @extend_schema(
        request=PostInputSerializer, responses={200: PostOutputSerializer, 403: NOT_AUTHOR, 404: NO_SUCH_POST}
    )
    def partial_update(self, request, pk=None):
        return self.update(request, pk=pk)

    @extend_schema(responses={204: None, 403: NOT_AUTHOR, 404: NO_SUCH_POST})
    def destroy(self, request, pk=None):
        services.post_delete(post=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    # Any signed-in user may vote for any post, so the author-only rule does not apply here.
    @extend_schema(
        request=None,
        responses={
            201: OpenApiResponse(PostOutputSerializer, description="Vote cast"),
            200: OpenApiResponse(PostOutputSerializer, description="Already voted: nothing changed"),
            404: NO_SUCH_POST,
        },
    )
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated, APIKeyScope])
    def vote(self, request, pk=None):
        """Vote for the post: 201 the first time, 200 when already voted (also under concurrency)."""
        created = services.post_vote(post=self.get_object(), user=request.user)
        post = selectors.post_detail(viewer=request.user, post_id=int(pk))
        return self.respond(post, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(
        request=None,
        responses={204: None, 404: OpenApiResponse(description="No such post, or no vote of yours for it")},
    )
    @vote.mapping.delete
    def unvote(self, request, pk=None):
        """Withdraw your vote: 204, or 404 when you have none for this post."""
        services.post_unvote(post=self.get_object(), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
