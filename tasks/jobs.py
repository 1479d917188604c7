"""Celery jobs of the tasks app: thin, idempotent wrappers around tasks.services.

Nothing imports this module: the services send a run by its registered name (`services.RUN_JOB`).
"""

from celery import shared_task

from tasks import services


@shared_task(name=services.RUN_JOB)
def run_task(task_id: int, run_number: int) -> None:
    """Run `run_number` of a task. A second delivery of the same message does nothing (see task_run_claim)."""
    services.task_run_execute(task_id=task_id, run_number=run_number)


@shared_task(name="tasks.sweep_stale_runs")
def sweep_stale_runs() -> dict:
    """Fail or restart runs whose worker vanished or that outlived their limit; re-send lost queued runs."""
    return vars(services.task_sweep_stale_runs())
