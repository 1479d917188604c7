"""The limits on a step's values and the checks every value goes through, with the error they raise.

Everything that reaches the browser driver or the replay script went through these checks
(by way of ``validate_steps``), so the driver can trust types, lengths and URL schemes.
Each check returns why a value is not acceptable, or None when it is; the actions
(actions.py) and the plan (steps.py) turn the reasons into ``StepValidationError``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .smart_selectors import smart_selector_problem

MAX_STEPS = 100
MAX_URL_LENGTH = 2048
MAX_SELECTOR_LENGTH = 1000
MAX_TEXT_LENGTH = 5000
MAX_KEY_LENGTH = 64
MAX_ACTION_LENGTH = 200  # search_input_action may become a button label inside a selector
MIN_STEP_TIMEOUT_MS = 100
MAX_STEP_TIMEOUT_MS = 60_000

_KEY_RE = re.compile(r"^(?:[A-Za-z0-9]+\+)*(?:[A-Za-z0-9]+|[^\sA-Za-z0-9])$")


class StepValidationError(ValueError):
    """A step list (or the fields a plan is built from) is not acceptable.

    ``messages`` maps a step's index as a string (``"0"``, ``"1"``...), ``"steps"`` for the
    list as a whole, ``"step"`` for a step validated on its own (``validate_step``), or a plan
    field name (``"start_url"``...) to a list of readable messages, the shape DRF uses for
    field errors.
    """

    def __init__(self, messages: dict[str, list[str]]):
        self.messages = messages
        super().__init__("; ".join(f"{key}: {' '.join(texts)}" for key, texts in messages.items()))


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


def string_problem(value: object, *, limit: int, allow_blank: bool) -> str | None:
    """Why ``value`` is not a string of at most ``limit`` characters (not blank unless allowed), or None."""
    if not isinstance(value, str):
        return "Must be a string."
    if not allow_blank and not value.strip():
        return "This field may not be blank."
    if len(value) > limit:
        return f"Must be at most {limit} characters."
    if "\x00" in value:
        return "Must not contain NUL characters."
    return None


def text_problem(value: object) -> str | None:
    """A text looked for in the page: not blank."""
    return string_problem(value, limit=MAX_TEXT_LENGTH, allow_blank=False)


def typed_text_problem(value: object) -> str | None:
    """A text typed into a field, kept exactly as given; "" just clears the field."""
    return string_problem(value, limit=MAX_TEXT_LENGTH, allow_blank=True)


def selector_problem(value: object) -> str | None:
    """A Playwright selector, or one of the smart selectors (smart_selectors.py)."""
    problem = string_problem(value, limit=MAX_SELECTOR_LENGTH, allow_blank=False)
    if problem:
        return problem
    selector = value.strip()
    if selector.startswith("@"):
        return smart_selector_problem(selector)
    return None


def key_problem(value: object) -> str | None:
    """A Playwright key name ("Enter", "Control+A") or a single character."""
    problem = string_problem(value, limit=MAX_KEY_LENGTH, allow_blank=False)
    if problem:
        return problem
    if not _KEY_RE.match(value.strip()):
        return 'Must be a key name such as "Enter", "Tab", "ArrowDown", "Control+A" or a single character.'
    return None


def timeout_problem(value: object) -> str | None:
    """A step's own timeout, in whole milliseconds."""
    if isinstance(value, bool) or not isinstance(value, int):
        return "Must be an integer number of milliseconds."
    if not MIN_STEP_TIMEOUT_MS <= value <= MAX_STEP_TIMEOUT_MS:
        return f"Must be between {MIN_STEP_TIMEOUT_MS} and {MAX_STEP_TIMEOUT_MS} milliseconds."
    return None
