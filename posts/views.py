"""Posts endpoints: thin views over posts.services and posts.selectors."""

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from config.pagination import CursorPagination
from posts import selectors, services
from posts.permissions import IsAuthorOrReadOnly
from posts.serializers import PostInputSerializer, PostListQuerySerializer, PostOutputSerializer

BIGINT_MAX = 2**63 - 1
NOT_AUTHOR = OpenApiResponse(description="Not the author of the post")
NOT_FOUND = OpenApiResponse(description="No such post")


def _is_post_id(value: str) -> bool:
    # int() would accept " 7", "+7", "7_0" and non-ASCII digits; an id is plain ASCII digits.
    return value.isascii() and value.isdigit() and int(value) <= BIGINT_MAX


@extend_schema(tags=["posts"])
@extend_schema_view(
    list=extend_schema(parameters=[PostListQuerySerializer]),
    retrieve=extend_schema(responses={200: PostOutputSerializer, 404: NOT_FOUND}),
)
class PostViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Posts: every signed-in user reads them all, only the author changes or deletes one; one vote per user."""

    serializer_class = PostOutputSerializer
    permission_classes = [IsAuthenticated, IsAuthorOrReadOnly]
    pagination_class = CursorPagination
    # Anything up to the next slash reaches get_object(), which answers a JSON 404 for a non-numeric id.
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        if self.action == "list":
            filters = PostListQuerySerializer(data=self.request.query_params)
            filters.is_valid(raise_exception=True)
            return selectors.post_list(viewer=self.request.user, **filters.validated_data)
        return selectors.post_list(viewer=self.request.user)

    def get_object(self):
        if not _is_post_id(self.kwargs[self.lookup_field]):
            raise Http404
        return super().get_object()

    def _respond(self, post, status_code=status.HTTP_200_OK) -> Response:
        return Response(self.get_serializer(post).data, status=status_code)

    @extend_schema(request=PostInputSerializer, responses={201: PostOutputSerializer})
    def create(self, request):
        incoming = PostInputSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        post = services.post_create(author=request.user, **incoming.validated_data)
        return self._respond(selectors.post_detail(viewer=request.user, post_id=post.pk), status.HTTP_201_CREATED)

    @extend_schema(request=PostInputSerializer, responses={200: PostOutputSerializer, 403: NOT_AUTHOR, 404: NOT_FOUND})
    def update(self, request, pk=None):
        post = self.get_object()  # 404, then 403 for a non-author, before the body is looked at
        incoming = PostInputSerializer(data=request.data, partial=request.method == "PATCH")
        incoming.is_valid(raise_exception=True)
        if incoming.validated_data:
            post = services.post_update(post=post, **incoming.validated_data)
        return self._respond(post)

    @extend_schema(request=PostInputSerializer, responses={200: PostOutputSerializer, 403: NOT_AUTHOR, 404: NOT_FOUND})
    def partial_update(self, request, pk=None):
        return self.update(request, pk=pk)

    @extend_schema(responses={204: None, 403: NOT_AUTHOR, 404: NOT_FOUND})
    def destroy(self, request, pk=None):
        services.post_delete(post=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    # Any signed-in user may vote for any post, so the author-only rule does not apply here.
    @extend_schema(
        request=None,
        responses={
            201: OpenApiResponse(PostOutputSerializer, description="Vote cast"),
            200: OpenApiResponse(PostOutputSerializer, description="Already voted: nothing changed"),
            404: NOT_FOUND,
        },
    )
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated])
    def vote(self, request, pk=None):
        """Vote for the post: 201 the first time, 200 when already voted (also under concurrency)."""
        created = services.post_vote(post=self.get_object(), user=request.user)
        post = selectors.post_detail(viewer=request.user, post_id=int(pk))
        return self._respond(post, status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(
        request=None,
        responses={204: None, 404: OpenApiResponse(description="No such post, or no vote of yours for it")},
    )
    @vote.mapping.delete
    def unvote(self, request, pk=None):
        """Withdraw your vote: 204, or 404 when you have none for this post."""
        services.post_unvote(post=self.get_object(), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
