"""Tasks: every write and rule about a task and its runs.

- `lifecycle`: what owners and admins do: create, settings, plan, initiate, re-run, cancel, delete;
- `runs`: what the worker does with a run: claim, watch, record, finish (`task_run_execute`);
- `scheduling`: who may queue a run and when it is sent: owner lock, caps, daily quota, fair dispatch;
- `sweeper`: what the beat job decides about runs that are stuck;
- `provider_keys`: users' keys for language-model providers, stored sealed, opened for a run.

A run goes created/finished -> queued (`task_initiate`) -> running (`task_run_claim`) ->
completed | failed, or cancelled from queued or running (`task_cancel`). Callers import from
this package, not from its modules.
"""

from tasks.services.lifecycle import (
    task_agent_settings_update,
    task_browser_settings_update,
    task_cancel,
    task_create,
    task_delete,
    task_initiate,
    task_plan,
    task_rerun,
)
from tasks.services.provider_keys import (
    RunKey,
    provider_key_check,
    provider_key_create,
    provider_key_delete,
    provider_key_for_run,
    provider_key_kids_in_use,
    provider_key_owned_check,
    provider_keys_reencrypt,
)
from tasks.services.runs import (
    RunClaim,
    RunWatch,
    task_run_claim,
    task_run_execute,
    task_run_fail,
    task_run_record,
)
from tasks.services.scheduling import RUN_JOB, run_dispatch_held
from tasks.services.sweeper import SweepReport, task_sweep_stale_runs

__all__ = [
    "RUN_JOB",
    "RunClaim",
    "RunKey",
    "RunWatch",
    "SweepReport",
    "provider_key_check",
    "provider_key_owned_check",
    "provider_key_create",
    "provider_key_delete",
    "provider_key_for_run",
    "provider_key_kids_in_use",
    "provider_keys_reencrypt",
    "run_dispatch_held",
    "task_agent_settings_update",
    "task_browser_settings_update",
    "task_cancel",
    "task_create",
    "task_delete",
    "task_initiate",
    "task_plan",
    "task_rerun",
    "task_run_claim",
    "task_run_execute",
    "task_run_fail",
    "task_run_record",
    "task_sweep_stale_runs",
]
