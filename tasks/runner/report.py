"""What goes into a run and what comes out of it: the browser options, one record per step, the report."""

from __future__ import annotations

from dataclasses import dataclass, field

OK, FAILED, SKIPPED, CANCELLED = "ok", "failed", "skipped", "cancelled"
# What the driver's run_step says happened to a step, besides OK and CANCELLED.
EXPECTATION_MISSED = "expectation_missed"  # an expect_text did not see its text; the run goes on
STEP_FAILED = "step_failed"  # the step could not be carried out; an explicit run stops there
STEP_FATAL = "step_fatal"  # nothing more can run: a blocked navigation, a hung or closed browser
DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024  # see TASKS_MAX_FRAME_BYTES in config/settings/base.py


@dataclass
class BrowserOptions:
    """How the browser is started: the task's browser settings plus the runner's timeouts and frame limits.

    Screenshots are shrunk to ``frame_width`` (the GIF's width) as they are taken, and the kept
    frames are thinned beyond ``max_frame_bytes`` (frames.py)."""

    headless: bool = True
    width: int = 1280
    height: int = 720
    step_timeout_ms: int = 10_000
    navigation_timeout_ms: int = 20_000
    # EGRESS_ALLOWLIST's entries: what the egress proxy lets the browser reach besides public addresses.
    egress_allowlist: tuple[str, ...] = ()
    # CHROMIUM_NO_SANDBOX: Chromium without its sandbox (only where it cannot start, e.g. as root).
    no_sandbox: bool = False
    frame_width: int = 800
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES


@dataclass
class StepRecord:
    """What happened to one step. ``args`` are the step's fields as executed: a smart selector is
    replaced by the concrete selector it resolved to, the original kept in ``planned_selector``."""

    index: int
    action: str
    args: dict
    status: str = SKIPPED  # "ok" | "failed" | "skipped" | "cancelled"
    duration_ms: int = 0
    error: str = ""
    url: str = ""  # the page's URL after the step
    reason: str | None = None  # in an agent run: why the model chose this action (None in other runs)
    # False for an agent's failed action that the run went on after: the replay leaves it out.
    in_replay: bool = True

    def to_dict(self) -> dict:
        document = {
            "index": self.index,
            "action": self.action,
            "args": dict(self.args),
            "status": self.status,
            "duration_ms": self.duration_ms,
            "error": self.error,
            "url": self.url,
        }
        if self.reason is not None:
            document["reason"] = self.reason
        return document


@dataclass
class RunReport:
    """The outcome of ``run_browser``.

    ``history`` has one record per step, in order (steps after a stop are "skipped" or
    "cancelled"); ``frames`` one small PNG per executed step ("ok" or "failed"), at most
    ``frame_width`` wide, or, when they outgrew ``max_frame_bytes``, one step in
    ``frame_stride`` plus the latest (``frame_stride`` is 1 when nothing was dropped). ``expectation_met``
    is True iff the steps contain at least one ``expect_text`` and every one of them saw its
    text. ``error`` is "" when the browser ran to the end, whatever the page showed, and says
    why it stopped otherwise (also "Run cancelled." when cancelled).

    An agent run (``run_agent``) adds ``usage`` ({model_calls, input_tokens, output_tokens}) and
    the model's closing ``summary``; its ``expectation_met`` is whether ``expected_outcome`` was
    seen on the final page when one was given, else the model's ``done.success``.
    """

    steps: list[dict]
    history: list[StepRecord] = field(default_factory=list)
    frames: list[bytes] = field(default_factory=list)
    frame_stride: int = 1
    expectation_met: bool = False
    error: str = ""
    cancelled: bool = False
    usage: dict | None = None
    summary: str = ""

    def replay_steps(self) -> list[dict]:
        """The steps for ``render_script``: executed ones with the selectors they resolved to (an
        agent's failed attempts that it went on after left out)."""
        return [
            {"action": record.action, **{k: v for k, v in record.args.items() if k != "planned_selector"}}
            for record in self.history
            if record.in_replay
        ]
