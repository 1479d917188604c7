"""Celery jobs of the tasks app: thin, idempotent wrappers around tasks.services.

Nothing imports this module: the services send a run by its registered name (`services.RUN_JOB`).
The worker imports it at start (Celery's autodiscovery), which is why its start-up check lives here.
"""

import logging
import os

from celery import shared_task, signals
from django.conf import settings

from tasks import runner, services

logger = logging.getLogger(__name__)


@shared_task(name=services.RUN_JOB)
def run_task(task_id: int, run_number: int) -> None:
    """Run `run_number` of a task. A second delivery of the same message does nothing (see task_run_claim)."""
    services.task_run_execute(task_id=task_id, run_number=run_number)


@shared_task(name="tasks.sweep_stale_runs")
def sweep_stale_runs() -> dict:
    """Fail or restart runs whose worker vanished or that outlived their limit; re-send lost queued runs."""
    return vars(services.task_sweep_stale_runs())


@signals.worker_ready.connect(weak=False, dispatch_uid="tasks.chromium_sandbox_warning")
def warn_about_chromium_sandbox(**_kwargs) -> None:
    """Once per worker start (the main process, not each pool child): say when Chromium runs without
    its sandbox, or cannot start with it (root), before the first run finds out."""
    warning = runner.sandbox_warning(no_sandbox=settings.CHROMIUM_NO_SANDBOX, euid=os.geteuid())
    if warning:
        logger.warning(warning)
