"""Admin for posts and votes. Changes go through posts.services, like the API's."""

from django.contrib import admin, messages

from posts import services
from posts.models import Post, Vote


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ["id", "author", "preview", "vote_count", "created_at", "updated_at"]
    list_select_related = ["author"]
    # Exact username (index on lower(username)) or words of the content.
    search_fields = ["content", "author__username__iexact"]
    search_help_text = "Words of the content, or an author's exact username."
    raw_id_fields = ["author"]
    readonly_fields = ["vote_count", "created_at", "updated_at"]
    ordering = ["-created_at", "-id"]
    # A full COUNT(*) of a million-row table on every page would dominate the page's cost.
    show_full_result_count = False
    actions = ["recount_votes"]

    @admin.display(description="content")
    def preview(self, post):
        return post.content[:80] + ("…" if len(post.content) > 80 else "")

    def get_readonly_fields(self, request, obj=None):
        # The author is set at creation and never changes hands.
        return [*self.readonly_fields, "author"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            services.post_update(post=obj, content=obj.content)
        else:
            created = services.post_create(author=obj.author, content=obj.content)
            obj.pk = created.pk

    def delete_model(self, request, obj):
        services.post_delete(post=obj)

    def delete_queryset(self, request, queryset):
        for post in queryset:
            services.post_delete(post=post)

    @admin.action(description="Recount the votes of the selected posts")
    def recount_votes(self, request, queryset):
        changed = services.post_vote_counts_recompute(post_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Recounted the votes of {changed} post(s).", messages.SUCCESS)


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    """Votes are cast through the API; here they are looked at and, if need be, withdrawn."""

    list_display = ["id", "user", "post_id", "created_at"]
    list_select_related = ["user"]
    search_fields = ["user__username__iexact"]
    raw_id_fields = ["user", "post"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        services.post_unvote(post=obj.post, user=obj.user)

    def delete_queryset(self, request, queryset):
        for vote in queryset.select_related("post", "user"):
            services.post_unvote(post=vote.post, user=vote.user)
