"""TEMPORARY until the runner branch lands (helper builds the real one)."""

import json
from dataclasses import dataclass

from .gif import render_gif
from .script import render_script


@dataclass(frozen=True)
class RunArtifacts:
    files: dict[str, bytes]
    warnings: list[str]


def history_document(*, task_id, run_number, steps, history, error) -> bytes:
    document = {"task_id": task_id, "run": run_number, "steps": steps, "history": history, "error": error}
    return json.dumps(document, indent=2, ensure_ascii=False).encode()


def render_artifacts(*, task_id, run_number, report, options, expected_status, gif_max_width=800) -> RunArtifacts:
    warnings = []
    if not report.frames:
        warnings.append("The browser took no screenshot; the GIF is a placeholder.")
    files = {
        "gif": render_gif(report.frames, max_width=gif_max_width),
        "script": render_script(steps=report.replay_steps(), options=options, expected_status=expected_status).encode(),
        "history": history_document(
            task_id=task_id,
            run_number=run_number,
            steps=report.steps,
            history=[r.to_dict() for r in report.history],
            error=report.error,
        ),
    }
    return RunArtifacts(files=files, warnings=warnings)
