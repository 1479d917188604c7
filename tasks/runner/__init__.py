"""The browser runner: plain Python (no Django, no Celery) that turns steps into a browser run.

Interface, used by tasks.services / tasks.jobs / tasks.serializers, which import from this
package only, never its modules (see docs/runner.md for the step vocabulary)::

    from tasks.runner import (BrowserOptions, RunReport, StepRecord, StepValidationError,
                              validate_steps, validate_step, plan_steps, url_problem, run_browser,
                              render_gif, render_script, render_artifacts, RunArtifacts, history_document)

ACTIONS: the action names ("goto", "fill", "click", "press", "wait_for", "expect_text").
ACTION_FIELDS: action -> (required field names, optional field names); every action also takes
    COMMON_OPTIONAL_FIELDS ("timeout_ms", MIN_STEP_TIMEOUT_MS..MAX_STEP_TIMEOUT_MS). Limits:
    MAX_STEPS (100), MAX_URL_LENGTH, MAX_SELECTOR_LENGTH, MAX_TEXT_LENGTH, MAX_KEY_LENGTH and
    MAX_ACTION_LENGTH (search_input_action).

validate_steps(steps) -> list[dict]
    Normalise and validate a client's step list (None -> []). Raises
    StepValidationError(messages) with ``messages: dict[str, list[str]]`` keyed by the step's
    index ("0", "1", ...) or "steps" for the list as a whole: unknown actions or fields, missing
    url/selector/text/key, non-string values, non-http(s) URLs (file://, javascript:...), more
    than MAX_STEPS (100) steps, over-long strings, timeout_ms out of 100..60000.

validate_step(raw) -> dict
    The same for one step; its messages are keyed by "step".

url_problem(value) -> str | None
    Why a value is not an acceptable http(s) URL (the check every goto and start_url passes), or None.

plan_steps(*, start_url, search_input_input, search_input_action, expected_outcome) -> list[dict]
    The plan when a client gives no steps: goto start_url; fill "@search-box" (resolved in the
    page at run time); press Enter in it ("", "submit", "enter") or click "@search-button"
    ("click") or click "@button=<label>" (any other text); expect_text expected_outcome if
    given. Raises StepValidationError keyed by field name ("start_url", ...) for bad fields.

run_browser(*, steps, options: BrowserOptions, on_step=None, should_cancel=None) -> RunReport
    Runs the steps in a fresh Chromium (CHROMIUM_PATH, else /usr/bin/chromium, else
    Playwright's own) on a thread of its own. ``on_step(done, total)`` after each executed step
    and ``should_cancel()`` about every 0.5 s are called on the CALLER's thread (so they may
    use the Django ORM). Never raises for a browser problem: a step that cannot run (timeout,
    unreachable page, selector that never appears, crash) stops the run with ``error`` set and
    the rest "skipped"; a missed expect_text is not a failure (``expectation_met`` False).
    A cancel stops the browser within ~2 s (``cancelled`` True, remaining steps "cancelled").
    If a callback raises, or the caller is interrupted (Celery's SoftTimeLimitExceeded), the
    browser is killed and the exception propagates. One run per process at a time.

EgressPolicy.from_entries(EGRESS_ALLOWLIST entries) -> EgressPolicy (ValueError for a bad entry)
    The browser's address policy (egress.py; the proxy in egress_proxy.py enforces it for every
    connection of a run, ``BrowserOptions.egress_allowlist`` opening what the operator allows).
    ``url_refusal(url)`` is the early check at initiate: why the URL's host is refused (a
    literal refused address in any spelling Chromium accepts, or a name resolving only to such
    addresses), or None. A navigation the proxy blocks ends the run: the step fails with an
    error starting "blocked by the egress policy: <host>".

BrowserOptions: headless, width, height, step_timeout_ms, navigation_timeout_ms,
    egress_allowlist, no_sandbox, frame_width
    (screenshots are shrunk to it as they are taken: the GIF's width), max_frame_bytes (the
    kept frames' budget; beyond it they are thinned, see frames.py).
RunReport: steps (validated), history (list[StepRecord], one per step), frames (a small
    palette PNG per executed step, <= frame_width wide), frame_stride (1; or, when the frames
    outgrew max_frame_bytes, the kept ones are one step in frame_stride plus the latest),
    expectation_met (True iff >= 1 expect_text and all saw their text), error ("" when the
    browser ran to the end), cancelled; replay_steps() -> steps for render_script with the
    selectors as resolved.
StepRecord: index, action, args (as executed; "planned_selector" when a smart selector was
    resolved), status ("ok" | "failed" | "skipped" | "cancelled"), duration_ms, error, url;
    to_dict() for the history JSON.

render_gif(frames, *, max_width=800, frame_ms=1000) -> bytes
    Animated, looping GIF; one frame per screenshot (PNG or JPEG; at most 200, sampled evenly),
    scaled to <= max_width, 256 colours, a progress bar per frame; a one-frame placeholder if
    no frames. Streamed: one frame decoded at a time.

render_script(*, steps, options, expected_status="success") -> str
    Standalone Playwright script replaying the steps; exit 0 iff its outcome ("success" when
    every expect_text saw its text, at least one) equals expected_status, 1 (AssertionError)
    otherwise, another non-zero status if a step cannot run. Raises StepValidationError for
    invalid steps and ValueError for an unknown expected_status.

render_artifacts(*, task_id, run_number, report, options, expected_status, gif_max_width=800) -> RunArtifacts
    A finished run's files: ``files`` {"gif": render_gif(report.frames), "script":
    render_script(report.replay_steps()) as UTF-8, "history": history_document(...)} in that
    order, and ``warnings`` (a placeholder GIF when the browser took no screenshot; frames
    thinned to fit options.max_frame_bytes).
history_document(*, task_id, run_number, steps, history, error) -> bytes
    The history JSON: {"task_id", "run", "steps", "history", "error"}, indented, UTF-8.
sandbox_warning(*, no_sandbox, euid) -> str | None
    What a worker logs at start about Chromium's sandbox: a warning when ``no_sandbox``
    (CHROMIUM_NO_SANDBOX) is set, or when it runs as root without it (Chromium will not start).

Inside the package: actions.py (each action once: fields, execution, replay lines), steps.py
(the list and the plan), fields.py (limits and value checks), smart_selectors.py, waiting.py
(sliced waits), driver.py (the browser thread and its watch), processes.py (the kill),
report.py, script.py, gif.py, frames.py (the frame store), artifacts.py, chromium.py, egress.py and egress_proxy.py.
"""

from .actions import ACTION_FIELDS, ACTIONS, COMMON_OPTIONAL_FIELDS, validate_step
from .agent import AgentOptions
from .artifacts import RunArtifacts, history_document, render_artifacts
from .chromium import sandbox_warning
from .driver import run_agent, run_browser
from .egress import EgressPolicy
from .fields import (
    MAX_ACTION_LENGTH,
    MAX_KEY_LENGTH,
    MAX_SELECTOR_LENGTH,
    MAX_STEP_TIMEOUT_MS,
    MAX_STEPS,
    MAX_TEXT_LENGTH,
    MAX_URL_LENGTH,
    MIN_STEP_TIMEOUT_MS,
    StepValidationError,
    url_problem,
)
from .gif import render_gif
from .providers import PROVIDERS, ProviderConfig
from .report import BrowserOptions, RunReport, StepRecord
from .script import render_script
from .steps import plan_steps, validate_steps

__all__ = [
    "ACTIONS",
    "PROVIDERS",
    "ACTION_FIELDS",
    "COMMON_OPTIONAL_FIELDS",
    "MAX_ACTION_LENGTH",
    "MAX_KEY_LENGTH",
    "MAX_SELECTOR_LENGTH",
    "MAX_STEPS",
    "MAX_STEP_TIMEOUT_MS",
    "MAX_TEXT_LENGTH",
    "MAX_URL_LENGTH",
    "MIN_STEP_TIMEOUT_MS",
    "AgentOptions",
    "BrowserOptions",
    "EgressPolicy",
    "ProviderConfig",
    "RunArtifacts",
    "RunReport",
    "StepRecord",
    "StepValidationError",
    "history_document",
    "plan_steps",
    "render_artifacts",
    "render_gif",
    "render_script",
    "run_agent",
    "run_browser",
    "sandbox_warning",
    "url_problem",
    "validate_step",
    "validate_steps",
]
