"""Permission classes of the posts app."""

from rest_framework.permissions import SAFE_METHODS, BasePermission


class IsAuthorOrReadOnly(BasePermission):
    """Every caller the view admits may read a post; only its author may change or delete it."""

    message = "Only the author of this post may change or delete it."

    def has_object_permission(self, request, view, obj):
        return request.method in SAFE_METHODS or obj.author_id == request.user.pk
