"""Reads of results, scoped to the owner of their task."""

from config.errors import NotFound
from results.models import Result, ResultFile

NO_RESULT = "No result for this task yet."


def result_get(*, owner, task_id: int) -> Result:
    """The result of one of the owner's tasks, with its task and files (two queries); 404 otherwise."""
    result = (
        Result.objects.select_related("task")
        .prefetch_related("files")
        .filter(task_id=task_id, task__owner=owner)
        .first()
    )
    if result is None:
        raise NotFound(NO_RESULT)
    return result


def result_file_get(*, owner, task_id: int, kind: str) -> ResultFile:
    """One stored file of the owner's result; 404 for anyone else, or when the run has no such file."""
    file = (
        ResultFile.objects.select_related("result")
        .filter(result__task_id=task_id, result__task__owner=owner, kind=kind)
        .first()
    )
    if file is None:
        raise NotFound("No such file for this task.")
    return file
