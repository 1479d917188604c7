"""The files a finished run leaves: the GIF of its screenshots, the replay script and the history.

Pure: bytes in memory, no storage. Storing them (and deleting them with their result) is the
results app's business.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .gif import render_gif
from .report import BrowserOptions, RunReport
from .script import render_script

NO_SCREENSHOT_WARNING = "The browser took no screenshot; the GIF is a placeholder."
THINNED_WARNING = (
    "The screenshots outgrew the recording's limit of {limit}; the GIF shows one step in {stride}, "
    "the first and the last."
)


@dataclass(frozen=True)
class RunArtifacts:
    """A run's files by kind, in the order "gif", "script", "history", and what the result should warn about."""

    files: dict[str, bytes]
    warnings: list[str]


def history_document(
    *, task_id: int, run_number: int, steps: list, history: list, error: str, agent: dict | None = None
) -> bytes:
    """The history file: what ran, each step's outcome and timing, and why the run stopped; for an agent
    run also ``agent``: {summary, usage}."""
    document = {"task_id": task_id, "run": run_number, "steps": steps, "history": history, "error": error}
    if agent is not None:
        document["agent"] = agent
    return json.dumps(document, indent=2, ensure_ascii=False).encode()


def frame_warnings(report: RunReport, options: BrowserOptions) -> list[str]:
    """What the GIF leaves out: everything (no screenshot), or steps (frames thinned to fit max_frame_bytes)."""
    if not report.frames:
        return [NO_SCREENSHOT_WARNING]
    if report.frame_stride > 1:
        return [THINNED_WARNING.format(limit=_readable_size(options.max_frame_bytes), stride=report.frame_stride)]
    return []


def _readable_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f}".removesuffix(".0") + " MB"
    if size >= 1024:
        return f"{size // 1024} KB"
    return f"{size} byte" + ("s" if size != 1 else "")


def render_artifacts(
    *,
    task_id: int,
    run_number: int,
    report: RunReport,
    options: BrowserOptions,
    expected_status: str,
    gif_max_width: int = 800,
) -> RunArtifacts:
    """Render a finished run's three files from its report.

    The replay script is made from ``report.replay_steps()``: the selectors as resolved in the
    page, so the replay needs no smart-selector logic for the steps that ran. Raises what
    ``render_script`` raises for an unknown ``expected_status`` and ``render_gif`` for a
    ``gif_max_width`` under 16.
    """
    warnings = frame_warnings(report, options)
    gif = render_gif(report.frames, max_width=gif_max_width)
    agent_run = report.usage is not None
    script = render_script(
        steps=report.replay_steps(),
        options=options,
        expected_status=expected_status,
        outcome_without_expectations="success" if agent_run and report.expectation_met else "failure",
    )
    history = history_document(
        task_id=task_id,
        run_number=run_number,
        steps=report.steps,
        history=[record.to_dict() for record in report.history],
        error=report.error,
        agent={"summary": report.summary, "usage": report.usage} if agent_run else None,
    )
    return RunArtifacts(files={"gif": gif, "script": script.encode(), "history": history}, warnings=warnings)
