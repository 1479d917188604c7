"""Smart selectors: names for elements that the runner finds in the page when the step runs.

Besides ordinary Playwright selectors (CSS, ``text=``, ``role=``, ``xpath=``...), a step's
selector may be one of these, resolved in the page at run time:

``@search-box``       the page's search input (role=searchbox, type=search, name/placeholder/label
                      mentioning "search", name ``q``...; see ``SEARCH_BOX_CANDIDATES``)
``@search-button``    the button that submits the search (``SEARCH_BUTTON_CANDIDATES``)
``@button=<label>``   a button (or failing that a link) whose accessible name is ``<label>``

The driver records which concrete selector it used, so history and replay script show it.
"""

from __future__ import annotations

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


def smart_selector_problem(selector: str) -> str | None:
    """Why a selector starting with "@" is not a known smart selector, or None when it is one."""
    if selector in (SEARCH_BOX, SEARCH_BUTTON):
        return None
    if selector.startswith(BUTTON_PREFIX) and selector[len(BUTTON_PREFIX) :].strip():
        return None
    return f"Unknown smart selector; use {SEARCH_BOX}, {SEARCH_BUTTON} or {BUTTON_PREFIX}<label>."


def missing_element(selector: str) -> str:
    """How a step says that ``selector`` never matched a visible element (before "(waited N ms)")."""
    if selector == SEARCH_BOX:
        return "no search box"
    if selector == SEARCH_BUTTON:
        return "no search button"
    if selector_candidates(selector) is not None:
        return f"no button or link named {selector.split('=', 1)[1]!r}"
    return f"selector {selector!r} did not appear"
