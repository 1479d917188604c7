"""Reads of tasks, always scoped to their owner."""

from django.db.models import QuerySet

from tasks.models import ProviderKey, Task


def task_list(*, owner, status: str | None = None) -> QuerySet[Task]:
    """The owner's tasks, newest first (served by the owner/created_at indexes)."""
    tasks = Task.objects.filter(owner=owner).order_by("-created_at", "-id")
    if status:
        tasks = tasks.filter(status=status)
    return tasks


def provider_key_list(*, owner) -> QuerySet[ProviderKey]:
    """The owner's provider keys, newest first (the owner/created_at index); the sealed columns are not read."""
    return (
        ProviderKey.objects.filter(owner=owner)
        .defer("wrapped_key", "nonce", "ciphertext")
        .order_by("-created_at", "-id")
    )
