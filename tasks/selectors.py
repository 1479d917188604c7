"""Reads of tasks, always scoped to their owner."""

from django.db.models import QuerySet

from tasks.models import Task


def task_list(*, owner, status: str | None = None) -> QuerySet[Task]:
    """The owner's tasks, newest first (served by the owner/created_at indexes)."""
    tasks = Task.objects.filter(owner=owner).order_by("-created_at", "-id")
    if status:
        tasks = tasks.filter(status=status)
    return tasks
