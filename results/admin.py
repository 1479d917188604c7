"""Admin for results (with the GIF shown inline) and for file deletions waiting to be retried."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from config.errors import NotFound
from results import services
from results import storage as result_storage
from results.models import FileKind, PendingFileDeletion, Result, ResultFile


class ResultFileInline(admin.TabularInline):
    model = ResultFile
    fields = ["kind", "storage", "name", "size", "content_type"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Result)
class ResultAdmin(admin.ModelAdmin):
    list_display = ["task", "run_number", "actual_status", "expected_status", "passed", "created_at"]
    list_filter = ["actual_status", "passed", "created_at"]
    list_select_related = ["task", "task__owner"]
    search_fields = ["task__task_name", "task__owner__username__iexact"]
    ordering = ["-created_at", "-id"]
    show_full_result_count = False
    inlines = [ResultFileInline]
    fields = [
        "task",
        "run_number",
        "actual_status",
        "expected_status",
        "passed",
        "gif_preview",
        "file_links",
        "warnings",
        "model_usage",
        "history",
        "created_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def _file_url(self, result, kind):
        return reverse("admin:results_result_file", args=[result.pk, kind])

    @admin.display(description="model usage")
    def model_usage(self, result):
        if not result.usage:
            return "— (not an agent run)"
        usage = result.usage
        return (
            f"{usage.get('model_calls', 0)} model calls, {usage.get('input_tokens', 0)} input tokens, "
            f"{usage.get('output_tokens', 0)} output tokens"
        )

    @admin.display(description="recording")
    def gif_preview(self, result):
        if not any(f.kind == FileKind.GIF for f in result.files.all()):
            return "—"
        return format_html(
            '<img src="{}" alt="GIF of the run" style="max-width: 640px; border: 1px solid #ccc">',
            self._file_url(result, FileKind.GIF),
        )

    @admin.display(description="files")
    def file_links(self, result):
        return format_html_join(
            " · ",
            '<a href="{}">{}</a>',
            ((self._file_url(result, f.kind), f.get_kind_display()) for f in result.files.all()),
        )

    def get_urls(self):
        file_view = self.admin_site.admin_view(self.file_view)
        return [
            path("<int:result_id>/file/<str:kind>/", file_view, name="results_result_file"),
            *super().get_urls(),
        ]

    def file_view(self, request, result_id: int, kind: str):
        """Staff with view permission on results may see any result's files (the API serves owners only)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        file = get_object_or_404(ResultFile.objects.select_related("result"), result_id=result_id, kind=kind)
        try:
            return result_storage.file_response(file)
        except NotFound as error:
            raise Http404(error.detail) from None

    def delete_model(self, request, obj):
        self._delete(request, [obj])

    def delete_queryset(self, request, queryset):
        self._delete(request, queryset)

    def _delete(self, request, results):
        for result in results:
            report = services.result_delete(result=result)
            for warning in report.warnings:
                self.message_user(request, f"{result}: {warning}", messages.WARNING)


@admin.register(PendingFileDeletion)
class PendingFileDeletionAdmin(admin.ModelAdmin):
    """Stored files whose owner row is gone; the retry job deletes them, this page shows what is left."""

    list_display = ["storage", "name", "reason", "attempts", "not_before", "last_error", "created_at"]
    list_filter = ["reason", "storage"]
    search_fields = ["name"]
    ordering = ["not_before"]
    readonly_fields = ["storage", "name", "reason", "attempts", "not_before", "last_error", "created_at"]
    actions = ["retry_now"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        # Deleting a row here would orphan its file for good.
        return False

    @admin.action(description="Try to delete the selected files now")
    def retry_now(self, request, queryset):
        outcomes = services.pending_file_deletions_process(ids=list(queryset.values_list("pk", flat=True)))
        gone = sum(outcome.error is None for outcome in outcomes)
        self.message_user(request, f"Deleted {gone} of {len(outcomes)} file(s).", messages.INFO)
