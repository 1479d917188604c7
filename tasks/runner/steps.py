"""Browser steps: the vocabulary, its validation, and the plan used when a client gives no steps.

A step is a small dict with an ``action`` and that action's fields (see ``ACTION_FIELDS``).
Everything that reaches the browser driver or the replay script went through
``validate_steps`` first, so the driver can trust types, lengths and URL schemes.

Besides ordinary Playwright selectors (CSS, ``text=``, ``role=``, ``xpath=``...), a selector
may be one of the runner's *smart selectors*, resolved in the page at run time:

``@search-box``       the page's search input (role=searchbox, type=search, name/placeholder/label
                      mentioning "search", name ``q``...; see ``SEARCH_BOX_CANDIDATES``)
``@search-button``    the button that submits the search (``SEARCH_BUTTON_CANDIDATES``)
``@button=<label>``   a button (or failing that a link) whose accessible name is ``<label>``

The driver records which concrete selector it used, so history and replay script show it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MAX_STEPS = 100
MAX_URL_LENGTH = 2048
MAX_SELECTOR_LENGTH = 1000
MAX_TEXT_LENGTH = 5000
MAX_KEY_LENGTH = 64
MAX_ACTION_LENGTH = 200  # search_input_action may become a button label inside a selector
MIN_STEP_TIMEOUT_MS = 100
MAX_STEP_TIMEOUT_MS = 60_000

# action -> (required fields, optional fields). "timeout_ms" is optional on every action.
ACTION_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "goto": (("url",), ()),
    "fill": (("selector", "text"), ()),
    "click": (("selector",), ()),
    "press": (("key",), ("selector",)),
    "wait_for": ((), ("selector", "text")),
    "expect_text": (("text",), ()),
}
ACTIONS = tuple(ACTION_FIELDS)
COMMON_OPTIONAL_FIELDS = ("timeout_ms",)

SEARCH_BOX = "@search-box"
SEARCH_BUTTON = "@search-button"
BUTTON_PREFIX = "@button="

# Tried in this order; the first one that matches a visible element wins. Each is a plain
# Playwright selector, so the one that matched can be written into the replay script as is.
SEARCH_BOX_CANDIDATES = (
    "role=searchbox",
    'input[type="search" i]',
    'input[name="q" i]',
    'textarea[name="q" i]',
    'input[name*="search" i]',
    'input[placeholder*="search" i]',
    'input[aria-label*="search" i]',
    'input[id*="search" i]',
    'textarea[name*="search" i]',
    'textarea[aria-label*="search" i]',
    'form[role="search"] input:not([type="hidden"]):not([type="submit"]):not([type="button"])',
    'input[name="query" i]',
    'input[name="s"]',
)
SEARCH_BUTTON_CANDIDATES = (
    'form[role="search"] [type="submit"]',
    'form:has(input[type="search" i]) [type="submit"]',
    'form:has(input[name="q" i]) [type="submit"]',
    'form:has(textarea[name="q" i]) [type="submit"]',
    'internal:role=button[name="search"i]',
    'form:has(input[name*="search" i]) [type="submit"]',
    'form:has(input[placeholder*="search" i]) [type="submit"]',
    'button[aria-label*="search" i]',
    '[type="submit"]',
)

# Words in search_input_action meaning "submit the search box with Enter" / "click its button".
SUBMIT_WORDS = {"", "submit", "enter", "press enter", "return", "press return", "press", "key enter"}
CLICK_WORDS = {"click", "click search", "click the search button", "search button", "button", "click button"}

_KEY_RE = re.compile(r"^(?:[A-Za-z0-9]+\+)*(?:[A-Za-z0-9]+|[^\sA-Za-z0-9])$")


class StepValidationError(ValueError):
    """A step list (or the fields a plan is built from) is not acceptable.

    ``messages`` maps a step's index as a string (``"0"``, ``"1"``...), ``"steps"`` for the
    list as a whole, or a plan field name (``"start_url"``...) to a list of readable messages,
    the shape DRF uses for field errors.
    """

    def __init__(self, messages: dict[str, list[str]]):
        self.messages = messages
        super().__init__("; ".join(f"{key}: {' '.join(texts)}" for key, texts in messages.items()))


def quote_selector_value(value: str) -> str:
    """Quote a value for a Playwright attribute selector (``[name="..."]``), as Playwright itself does."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def button_candidates(label: str) -> tuple[str, ...]:
    """Candidates for ``@button=<label>``: exact accessible name first, then looser matches, then links."""
    quoted = quote_selector_value(label)
    return (
        f"internal:role=button[name={quoted}s]",
        f"internal:role=button[name={quoted}i]",
        f"internal:role=link[name={quoted}s]",
        f"internal:role=link[name={quoted}i]",
    )


def selector_candidates(selector: str) -> tuple[str, ...] | None:
    """The candidate selectors of a smart selector, or None for an ordinary Playwright selector."""
    if selector == SEARCH_BOX:
        return SEARCH_BOX_CANDIDATES
    if selector == SEARCH_BUTTON:
        return SEARCH_BUTTON_CANDIDATES
    if selector.startswith(BUTTON_PREFIX):
        return button_candidates(selector[len(BUTTON_PREFIX) :])
    return None


def url_problem(value: object) -> str | None:
    """Why ``value`` is not an acceptable http(s) URL, or None when it is."""
    if not isinstance(value, str):
        return "Must be a string."
    if not value.strip():
        return "This field may not be blank."
    if len(value) > MAX_URL_LENGTH:
        return f"Must be at most {MAX_URL_LENGTH} characters."
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value.strip()):
        return "Must not contain spaces or control characters."
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 -- raises ValueError for a port out of range
    except ValueError:
        return "Enter a valid URL."
    if parts.scheme.lower() not in ("http", "https"):
        return "Only http:// and https:// URLs are allowed."
    if not parts.hostname:
        return "Enter a valid URL with a host name."
    return None


def _string_problem(value: object, *, limit: int, allow_blank: bool) -> str | None:
    if not isinstance(value, str):
        return "Must be a string."
    if not allow_blank and not value.strip():
        return "This field may not be blank."
    if len(value) > limit:
        return f"Must be at most {limit} characters."
    if "\x00" in value:
        return "Must not contain NUL characters."
    return None


def _selector_problem(value: object) -> str | None:
    problem = _string_problem(value, limit=MAX_SELECTOR_LENGTH, allow_blank=False)
    if problem:
        return problem
    selector = value.strip()
    if selector.startswith("@"):
        if selector in (SEARCH_BOX, SEARCH_BUTTON):
            return None
        if selector.startswith(BUTTON_PREFIX) and selector[len(BUTTON_PREFIX) :].strip():
            return None
        return f"Unknown smart selector; use {SEARCH_BOX}, {SEARCH_BUTTON} or {BUTTON_PREFIX}<label>."
    return None


def _key_problem(value: object) -> str | None:
    problem = _string_problem(value, limit=MAX_KEY_LENGTH, allow_blank=False)
    if problem:
        return problem
    if not _KEY_RE.match(value.strip()):
        return 'Must be a key name such as "Enter", "Tab", "ArrowDown", "Control+A" or a single character.'
    return None


def _timeout_problem(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return "Must be an integer number of milliseconds."
    if not MIN_STEP_TIMEOUT_MS <= value <= MAX_STEP_TIMEOUT_MS:
        return f"Must be between {MIN_STEP_TIMEOUT_MS} and {MAX_STEP_TIMEOUT_MS} milliseconds."
    return None


def _validate_step(raw: object) -> tuple[dict | None, list[str]]:
    if not isinstance(raw, dict):
        return None, ['Each step must be an object with an "action".']
    action = raw.get("action")
    if action is None:
        return None, ['"action" is required.']
    if not isinstance(action, str):
        return None, ['"action" must be a string.']
    action = action.strip().lower()
    if action not in ACTION_FIELDS:
        shown = raw["action"][:40]
        return None, [f"Unknown action {shown!r}; expected one of: {', '.join(ACTIONS)}."]
    required, optional = ACTION_FIELDS[action]
    allowed = {"action", *required, *optional, *COMMON_OPTIONAL_FIELDS}
    errors: list[str] = []
    for key in raw:
        if key not in allowed:
            shown = str(key)[:40]
            errors.append(f"Unknown field {shown!r} for action {action!r}; allowed: {', '.join(sorted(allowed))}.")
    for key in required:
        if key not in raw:
            errors.append(f'"{key}" is required for action {action!r}.')
    if action == "wait_for" and ("selector" in raw) == ("text" in raw):
        errors.append('"wait_for" needs exactly one of "selector" or "text".')

    step: dict = {"action": action}
    for key in (*required, *optional, *COMMON_OPTIONAL_FIELDS):
        if key not in raw:
            continue
        value = raw[key]
        if key == "url":
            problem = url_problem(value)
            value = value.strip() if problem is None else value
        elif key == "selector":
            problem = _selector_problem(value)
            value = value.strip() if problem is None else value
        elif key == "key":
            problem = _key_problem(value)
            value = value.strip() if problem is None else value
        elif key == "timeout_ms":
            problem = _timeout_problem(value)
        else:  # "text": typed or looked for as given; only fill may type an empty string
            problem = _string_problem(value, limit=MAX_TEXT_LENGTH, allow_blank=action == "fill")
        if problem:
            errors.append(f'"{key}": {problem}')
        else:
            step[key] = value
    return (None, errors) if errors else (step, [])


def validate_steps(steps: object) -> list[dict]:
    """Normalise and validate a client's step list; raise StepValidationError listing every problem.

    ``None`` means no steps (``[]``). Actions are case-insensitive; URLs, selectors and keys are
    stripped; ``text`` is kept exactly as given. Unknown fields are rejected rather than ignored,
    so a typo (``"selektor"``) is a 400 and not a silently different run.
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
        step, errors = _validate_step(raw)
        if errors:
            messages[str(index)] = errors
        else:
            cleaned.append(step)
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
        problem = _string_problem(value, limit=limit, allow_blank=True)
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
