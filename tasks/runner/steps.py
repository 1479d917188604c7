"""A step list: its validation, and the plan used when a client gives no steps.

The actions themselves (their fields, execution and replay code) are in actions.py, the
limits and value checks in fields.py, the smart selectors (``@search-box``...) in
smart_selectors.py. Everything that reaches the browser driver or the replay script went
through ``validate_steps`` first.
"""

from __future__ import annotations

from .actions import validate_step
from .fields import (
    MAX_ACTION_LENGTH,
    MAX_STEPS,
    MAX_TEXT_LENGTH,
    StepValidationError,
    string_problem,
    url_problem,
)
from .smart_selectors import BUTTON_PREFIX, SEARCH_BOX, SEARCH_BUTTON

# Words in search_input_action meaning "submit the search box with Enter" / "click its button".
SUBMIT_WORDS = {"", "submit", "enter", "press enter", "return", "press return", "press", "key enter"}
CLICK_WORDS = {"click", "click search", "click the search button", "search button", "button", "click button"}


def validate_steps(steps: object) -> list[dict]:
    """Normalise and validate a client's step list; raise StepValidationError listing every problem.

    ``None`` means no steps (``[]``). Each step goes through ``validate_step`` (actions.py); its
    problems are keyed by the step's index ("0", "1"...), those of the list by "steps".
    """
    if steps is None:
        return []
    if not isinstance(steps, list | tuple):
        raise StepValidationError({"steps": ["Expected a list of steps."]})
    if len(steps) > MAX_STEPS:
        raise StepValidationError({"steps": [f"At most {MAX_STEPS} steps are allowed (got {len(steps)})."]})
    cleaned: list[dict] = []
    messages: dict[str, list[str]] = {}
    for index, raw in enumerate(steps):
        try:
            cleaned.append(validate_step(raw))
        except StepValidationError as error:
            messages[str(index)] = error.messages["step"]
    if messages:
        raise StepValidationError(messages)
    return cleaned


def _action_plan(action_text: str, *, has_input: bool) -> list[dict]:
    """Steps for search_input_action: press Enter in the search box, click its button, or click a labelled one."""
    words = " ".join(action_text.split()).lower()
    if words in SUBMIT_WORDS:
        return [{"action": "press", "selector": SEARCH_BOX, "key": "Enter"}] if has_input else []
    if words in CLICK_WORDS:
        return [{"action": "click", "selector": SEARCH_BUTTON}]
    label = " ".join(action_text.split())
    if words.startswith("click ") and len(label) > len("click "):
        label = label[len("click ") :].strip().strip("\"'") or label
    return [{"action": "click", "selector": BUTTON_PREFIX + label}]


def plan_steps(
    *, start_url: str, search_input_input: str, search_input_action: str, expected_outcome: str
) -> list[dict]:
    """The steps to run when the client gave none; see docs/runner.md "Planning".

    1. ``goto start_url`` (required: StepValidationError ``{"start_url": [...]}`` otherwise);
    2. with ``search_input_input``: ``fill @search-box`` with it;
    3. ``search_input_action``: empty/"submit"/"enter" -> ``press Enter`` in the search box (only
       when something was typed); "click" -> ``click @search-button``; anything else is a button
       label (a leading "click " is dropped): ``click @button=<label>``;
    4. with ``expected_outcome``: ``expect_text`` it.
    """
    messages: dict[str, list[str]] = {}
    problem = url_problem(start_url)
    if problem:
        messages["start_url"] = [problem]
    fields = {
        "search_input_input": search_input_input,
        "search_input_action": search_input_action,
        "expected_outcome": expected_outcome,
    }
    for name, value in fields.items():
        if value is None:
            fields[name] = ""
            continue
        limit = MAX_ACTION_LENGTH if name == "search_input_action" else MAX_TEXT_LENGTH
        problem = string_problem(value, limit=limit, allow_blank=True)
        if problem:
            messages[name] = [problem]
    if messages:
        raise StepValidationError(messages)

    plan: list[dict] = [{"action": "goto", "url": start_url.strip()}]
    typed = fields["search_input_input"]
    if typed.strip():
        plan.append({"action": "fill", "selector": SEARCH_BOX, "text": typed})
    action_text = fields["search_input_action"]
    if action_text.strip() or typed.strip():
        plan.extend(_action_plan(action_text, has_input=bool(typed.strip())))
    expected = fields["expected_outcome"].strip()
    if expected:
        plan.append({"action": "expect_text", "text": expected})
    return validate_steps(plan)
