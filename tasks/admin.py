"""Admin for tasks: look, filter, re-run, cancel, delete; every change goes through tasks.services.

Also the daily-quota ledger, read-only: who queued how many runs in the last 24 hours; and users'
provider keys, to look at and delete (never their sealed columns).
"""

from django.contrib import admin, messages

from config.errors import ServiceError
from tasks import services
from tasks.models import ProviderKey, RunCharge, Task, TaskStatus


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = [
        *("id", "task_name", "owner", "status", "dispatch", "run_number", "progress"),
        *("created_at", "finished_at"),
    ]
    list_filter = ["status", "llm_provider", "expected_status", "created_at"]
    list_select_related = ["owner"]
    search_fields = ["task_name", "owner__username__iexact"]
    search_help_text = "Words of the task name, or the owner's exact username."
    raw_id_fields = ["owner"]
    ordering = ["-created_at", "-id"]
    show_full_result_count = False
    actions = ["rerun", "cancel"]

    # Tasks are created and configured through the API; here they are run, stopped or removed.
    def has_add_permission(self, request):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Task._meta.fields]

    @admin.display(description="progress")
    def progress(self, task):
        return f"{task.progress_done}/{task.progress_total}"

    def _each(self, request, queryset, service, done: str):
        succeeded = 0
        for task in queryset:
            try:
                service(task=task)
            except ServiceError as error:
                self.message_user(request, f"{task}: {error.detail}", messages.WARNING)
            except Exception as error:  # e.g. a definition that no longer validates
                self.message_user(request, f"{task}: {error}", messages.ERROR)
            else:
                succeeded += 1
        if succeeded:
            self.message_user(request, f"{done} {succeeded} task(s).", messages.SUCCESS)

    @admin.display(description="dispatch")
    def dispatch(self, task):
        """Whether a queued run was sent to the workers or waits behind its owner's other runs (fairness)."""
        if task.status != TaskStatus.QUEUED:
            return ""
        return "sent" if task.enqueued_at else "held"

    @admin.action(description="Re-run the selected tasks (same steps and settings; not charged to the daily quota)")
    def rerun(self, request, queryset):
        self._each(request, queryset, services.task_rerun, "Queued")

    @admin.action(description="Cancel the selected queued or running tasks")
    def cancel(self, request, queryset):
        self._each(request, queryset, services.task_cancel, "Cancelled")

    def delete_model(self, request, obj):
        self._each(request, [obj], services.task_delete, "Deleted")

    def delete_queryset(self, request, queryset):
        self._each(request, queryset, services.task_delete, "Deleted")


@admin.register(RunCharge)
class RunChargeAdmin(admin.ModelAdmin):
    """The runs counted against TASKS_DAILY_RUNS_PER_USER (the sweeper deletes those older than 24 hours)."""

    list_display = ["charged_at", "owner", "task", "run_number"]
    list_filter = ["charged_at"]
    list_select_related = ["owner", "task"]
    search_fields = ["owner__username__iexact"]
    search_help_text = "The owner's exact username: their runs of the last 24 hours."
    ordering = ["-charged_at", "-id"]
    show_full_result_count = False

    # A ledger: written by tasks.services only, never edited by hand.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ProviderKey)
class ProviderKeyAdmin(admin.ModelAdmin):
    """Users' provider keys: who, which provider, which RSA key seals it, when last used. Never the key."""

    list_display = ["id", "owner", "provider", "name", "base_url", "hint", "kid", "created_at", "last_used"]
    list_filter = ["provider", "kid", "created_at", "last_used"]
    list_select_related = ["owner"]
    search_fields = ["name", "owner__username__iexact"]
    search_help_text = "Words of the key's name, or the owner's exact username."
    raw_id_fields = ["owner"]
    ordering = ["-created_at", "-id"]
    # The envelope's columns are not shown, in a list, a form or a read-only field.
    fields = ["owner", "provider", "name", "base_url", "hint", "kid", "created_at", "updated_at", "last_used"]
    readonly_fields = fields

    # Keys are stored through the API (which can take them encrypted); here they are looked at or removed.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).defer("wrapped_key", "nonce", "ciphertext")

    def delete_model(self, request, obj):
        services.provider_key_delete(key=obj)

    def delete_queryset(self, request, queryset):
        for key in queryset:
            services.provider_key_delete(key=key)
