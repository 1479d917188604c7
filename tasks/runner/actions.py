"""The step vocabulary: each action once, with its fields, what it does in the browser and its replay code.

A step is a small dict with an ``action`` and that action's fields. An action is a subclass
of ``Action`` registered in ``ACTION_TABLE``, and everything else reads the table:

- ``validate_step(raw)`` checks one step against its action's fields (``validate_steps`` in
  steps.py checks a list; the API's schema lists ``ACTIONS`` and ``ACTION_FIELDS``);
- ``execute_step(page, step, context)`` carries one validated step out in a Playwright page
  (the driver calls it for each step, on the browser thread);
- ``Action.replay(step, script)`` gives the step's lines in the replay script (script.py).

So adding an action is one class below and one entry in ``ACTION_TABLE``.

Execution waits through a ``StepContext`` (waiting.py), which slices every wait so that a
cancel is noticed, and ends a step by raising StepFailed (the run stops), ExpectationMissed
(the run goes on) or Cancelled. Replay lines write every client value with ``repr()``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .fields import (
    StepValidationError,
    key_problem,
    selector_problem,
    text_problem,
    timeout_problem,
    typed_text_problem,
    url_problem,
)
from .waiting import ExpectationMissed, StepContext, StepFailed, first_line, settle

if TYPE_CHECKING:
    from .report import BrowserOptions
    from .script import ReplayLines


@dataclass(frozen=True)
class Field:
    """A step field: its name, the check its value must pass (None: fine), and whether it is stripped then."""

    name: str
    problem: Callable[[object], str | None]
    strip: bool = False


URL = Field("url", url_problem, strip=True)
SELECTOR = Field("selector", selector_problem, strip=True)
KEY = Field("key", key_problem, strip=True)
TEXT = Field("text", text_problem)  # looked for in the page as given
TYPED_TEXT = Field("text", typed_text_problem)  # typed as given; only fill may type an empty string
COMMON_OPTIONAL = (Field("timeout_ms", timeout_problem),)  # every action may replace its default timeout


class Action:
    """One action of the vocabulary: ``name``, its fields, ``execute`` in a page and ``replay`` as script lines."""

    name: ClassVar[str]
    required: ClassVar[tuple[Field, ...]] = ()
    optional: ClassVar[tuple[Field, ...]] = ()
    # The step loads a page: its default timeout is the navigation timeout, and after a failure
    # the driver lets Chromium show its error page before the screenshot.
    navigates: ClassVar[bool] = False

    def rule_problems(self, raw: dict) -> list[str]:
        """Problems of the step as a whole, beyond each field's own check."""
        return []

    def validate(self, raw: dict) -> tuple[dict | None, list[str]]:
        """The step normalised (None when it has problems) and every problem found."""
        fields = (*self.required, *self.optional, *COMMON_OPTIONAL)
        allowed = {"action", *(field.name for field in fields)}
        listed = ", ".join(sorted(allowed))
        errors = [
            f"Unknown field {str(key)[:40]!r} for action {self.name!r}; allowed: {listed}."
            for key in raw
            if key not in allowed
        ]
        errors += [
            f'"{field.name}" is required for action {self.name!r}.' for field in self.required if field.name not in raw
        ]
        errors += self.rule_problems(raw)
        step: dict = {"action": self.name}
        for field in fields:
            if field.name not in raw:
                continue
            value = raw[field.name]
            problem = field.problem(value)
            if problem:
                errors.append(f'"{field.name}": {problem}')
            else:
                step[field.name] = value.strip() if field.strip else value
        return (None, errors) if errors else (step, [])

    def execute(self, page, step: dict, context: StepContext) -> dict:
        """Carry the validated step out in ``page``; return its args as executed."""
        raise NotImplementedError

    def replay(self, step: dict, script: ReplayLines) -> list[str]:
        """The step's lines in the replay script's main() (``script.target()`` writes its element)."""
        raise NotImplementedError


def _args(step: dict) -> dict:
    return {key: value for key, value in step.items() if key != "action"}


def _locate_target(page, step: dict, context: StepContext):
    """The step's element once visible, and the step's args with the concrete selector that found it
    (a smart selector is kept in "planned_selector")."""
    args = _args(step)
    locator, concrete = context.locate(page, step["selector"])
    if concrete != step["selector"]:
        args["selector"] = concrete
        args["planned_selector"] = step["selector"]
    return locator, args


class Goto(Action):
    name = "goto"
    required = (URL,)
    navigates = True

    def execute(self, page, step, context):
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

        url, timeout_ms = step["url"], context.timeout_ms
        try:
            page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
        except PlaywrightTimeoutError:
            raise StepFailed(f"{url} did not load within {timeout_ms} ms") from None
        except PlaywrightError as exc:
            reason = re.sub(r"^\w+\.\w+: ", "", first_line(exc)).removesuffix(f" at {url}")
            raise context.stopped(f"could not load {url}: {reason}") from None
        context.wait_for_load(page)
        return _args(step)

    def replay(self, step, script):
        return [
            f'page.goto({step["url"]!r}, wait_until="domcontentloaded", timeout={script.timeout_ms})',
            "settle(page)",
        ]


class Fill(Action):
    name = "fill"
    required = (SELECTOR, TYPED_TEXT)

    def execute(self, page, step, context):
        locator, args = _locate_target(page, step, context)
        context.act("type into it", lambda ms: locator.fill(step["text"], timeout=ms))
        return args

    def replay(self, step, script):
        return [f"{script.target(step['selector'])}.fill({step['text']!r}, timeout={script.timeout_ms})"]


class Click(Action):
    name = "click"
    required = (SELECTOR,)

    def execute(self, page, step, context):
        locator, args = _locate_target(page, step, context)
        context.act(
            "click it",
            lambda ms: locator.click(timeout=ms),
            ready=lambda ms: locator.click(trial=True, timeout=ms),
        )
        settle(page)
        return args

    def replay(self, step, script):
        return [f"{script.target(step['selector'])}.click(timeout={script.timeout_ms})", "settle(page)"]


class Press(Action):
    """A key pressed in the element, or on the page (the focused element) without a selector."""

    name = "press"
    required = (KEY,)
    optional = (SELECTOR,)

    def execute(self, page, step, context):
        from playwright.sync_api import Error as PlaywrightError

        key = step["key"]
        if "selector" in step:
            locator, args = _locate_target(page, step, context)
            context.act(
                f"press {key}",
                lambda ms: locator.press(key, timeout=ms),
                ready=lambda ms: locator.wait_for(state="visible", timeout=ms),
            )
        else:
            args = _args(step)
            try:
                page.keyboard.press(key)
            except PlaywrightError as exc:
                raise context.stopped(f"could not press {key!r}: {first_line(exc)}") from None
        settle(page)
        return args

    def replay(self, step, script):
        if "selector" in step:
            pressed = f"{script.target(step['selector'])}.press({step['key']!r}, timeout={script.timeout_ms})"
        else:
            pressed = f"page.keyboard.press({step['key']!r})"
        return [pressed, "settle(page)"]


class WaitFor(Action):
    """Until an element is visible, or a text is on the page; the run stops if it never is."""

    name = "wait_for"
    optional = (SELECTOR, TEXT)

    def rule_problems(self, raw):
        if ("selector" in raw) == ("text" in raw):
            return ['"wait_for" needs exactly one of "selector" or "text".']
        return []

    def execute(self, page, step, context):
        if "selector" in step:
            _locator, args = _locate_target(page, step, context)
            return args
        if not context.text_seen(page, step["text"]):
            raise StepFailed(f"text {step['text']!r} did not appear within {context.timeout_ms} ms")
        return _args(step)

    def replay(self, step, script):
        if "selector" in step:
            return [f'{script.target(step["selector"])}.wait_for(state="visible", timeout={script.timeout_ms})']
        return [f"wait_text(page, {step['text']!r}, {script.timeout_ms})"]


class ExpectText(Action):
    """The run's expectation: a miss fails the step but not the run (``RunReport.expectation_met``)."""

    name = "expect_text"
    required = (TEXT,)

    def execute(self, page, step, context):
        if not context.text_seen(page, step["text"]):
            raise ExpectationMissed(f"expected text {step['text']!r} not found within {context.timeout_ms} ms")
        return _args(step)

    def replay(self, step, script):
        # A miss is recorded and the replay goes on, as in the recorded run.
        return [f"expectations.append(({step['text']!r}, text_seen(page, {step['text']!r}, {script.timeout_ms})))"]


ACTION_TABLE: dict[str, Action] = {
    action.name: action for action in (Goto(), Fill(), Click(), Press(), WaitFor(), ExpectText())
}
ACTIONS = tuple(ACTION_TABLE)
# action -> (required fields, optional fields), for the API's schema. "timeout_ms" is optional on every action.
ACTION_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    name: (tuple(field.name for field in action.required), tuple(field.name for field in action.optional))
    for name, action in ACTION_TABLE.items()
}
COMMON_OPTIONAL_FIELDS = tuple(field.name for field in COMMON_OPTIONAL)


def validate_step(raw: object) -> dict:
    """Normalise and validate one step; raise ``StepValidationError({"step": [...]})`` listing its problems.

    Actions are case-insensitive; URLs, selectors and keys are stripped; ``text`` is kept exactly
    as given. Unknown fields are rejected rather than ignored, so a typo (``"selektor"``) is an
    error and not a silently different run.
    """
    if not isinstance(raw, dict):
        errors = ['Each step must be an object with an "action".']
    elif raw.get("action") is None:
        errors = ['"action" is required.']
    elif not isinstance(raw["action"], str):
        errors = ['"action" must be a string.']
    elif raw["action"].strip().lower() not in ACTION_TABLE:
        errors = [f"Unknown action {raw['action'][:40]!r}; expected one of: {', '.join(ACTIONS)}."]
    else:
        step, errors = ACTION_TABLE[raw["action"].strip().lower()].validate(raw)
        if not errors:
            return step
    raise StepValidationError({"step": errors})


def execute_step(page, step: dict, context: StepContext) -> dict:
    """Carry out one validated step in a Playwright ``page``; return its args as executed (a smart
    selector replaced by the concrete one, the original in "planned_selector"). Raises StepFailed,
    ExpectationMissed or Cancelled (waiting.py), or a Playwright error for a browser that died."""
    return ACTION_TABLE[step["action"]].execute(page, step, context)


def step_timeout_ms(step: dict, options: BrowserOptions) -> int:
    """The step's own timeout_ms, else the navigation timeout for an action that loads a page, else the step timeout."""
    navigates = ACTION_TABLE[step["action"]].navigates
    return step.get("timeout_ms", options.navigation_timeout_ms if navigates else options.step_timeout_ms)
