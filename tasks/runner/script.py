"""Generate a standalone Playwright script that replays a run and checks its expectation.

Every value that came from a client (URLs, selectors, texts, keys) is written with ``repr()``,
which always yields a valid Python literal that evaluates back to the same string, whatever it
contains (quotes, backslashes, newlines, triple quotes, non-ASCII). Nothing a client sent is
ever written into a comment or docstring, and numbers and flags go through int()/bool().
"""

from __future__ import annotations

from .actions import ACTION_TABLE, step_timeout_ms
from .chromium import SYSTEM_CHROMIUM, launch_args
from .report import BrowserOptions
from .smart_selectors import SEARCH_BOX, SEARCH_BUTTON, selector_candidates
from .steps import validate_steps
from .waiting import SETTLE_MS, TEXT_PRESENT_JS

EXPECTED_STATUSES = ("success", "failure")

_HEADER = '''#!/usr/bin/env python3
"""Replay of a browser run recorded by Gatehouse.

Needs Playwright for Python (pip install playwright) and Chromium: CHROMIUM_PATH, else the
system /usr/bin/chromium, else Playwright's own (python -m playwright install chromium).
Chromium runs with its sandbox, which does not start as root: run the script as another user,
or set CHROMIUM_NO_SANDBOX=true to run Chromium without it.

Exit status 0 when the run's outcome is the expected one ("success": every expected text was
seen on the page), 1 (AssertionError) when it is not, and another non-zero status when a
step cannot be carried out (a page that does not load, a selector that never appears).
"""

import os
import shutil
import sys
import time

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import sync_playwright

'''

_HELPERS = '''

def chromium_executable():
    configured = os.environ.get("CHROMIUM_PATH", "").strip()
    if configured:
        return configured
    if os.path.exists(SYSTEM_CHROMIUM):
        return SYSTEM_CHROMIUM
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_sandbox():
    """Chromium's sandbox stays on unless CHROMIUM_NO_SANDBOX is true (as the service reads it)."""
    return os.environ.get("CHROMIUM_NO_SANDBOX", "").strip().lower() not in ("true", "on", "ok", "y", "yes", "1")


def settle(page):
    """Give a page load started by the last action a moment to finish."""
    try:
        page.wait_for_timeout(150)
        page.wait_for_load_state("load", timeout=SETTLE_MS)
    except PlaywrightError:
        pass


def text_seen(page, text, timeout_ms):
    """Whether the page's visible text contains text (whitespace collapsed, any case) within timeout_ms."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            return False
        try:
            page.wait_for_function(TEXT_PRESENT_JS, arg=text, timeout=remaining_ms, polling=100)
            return True
        except PlaywrightTimeoutError:
            return False
        except PlaywrightError:
            time.sleep(0.1)  # the page navigated while we looked: look again in the new one


def wait_text(page, text, timeout_ms):
    if not text_seen(page, text, timeout_ms):
        raise TimeoutError(f"text {text!r} did not appear within {timeout_ms} ms")
'''

_LOCATE_HELPER = '''

def locate(page, candidates, timeout_ms):
    """The first visible element matched by one of the candidate selectors, tried in order."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        for candidate in candidates:
            locator = page.locator(candidate + " >> visible=true >> nth=0")
            try:
                if locator.count():
                    return locator
            except PlaywrightError:
                pass  # the page is navigating
        if time.monotonic() > deadline:
            raise TimeoutError(f"none of {candidates!r} appeared within {timeout_ms} ms")
        page.wait_for_timeout(150)
'''


_NAMED_CANDIDATES = {SEARCH_BOX: "SEARCH_BOX_CANDIDATES", SEARCH_BUTTON: "SEARCH_BUTTON_CANDIDATES"}


class ReplayLines:
    """What an action's ``replay()`` writes one step's lines with: the step's timeout, and
    ``target()`` for the element it acts on (noting whether the script needs its locate() helper)."""

    def __init__(self, timeout_ms: int):
        self.timeout_ms = timeout_ms
        self.needs_locate = False

    def target(self, selector: str) -> str:
        """Python expression for the element a step acts on."""
        candidates = selector_candidates(selector)
        if candidates is None:
            return f"page.locator({selector!r}).first"
        self.needs_locate = True
        listed = _NAMED_CANDIDATES.get(selector) or repr(list(candidates))
        return f"locate(page, {listed}, {self.timeout_ms})"


def render_script(
    *,
    steps: list[dict],
    options: BrowserOptions,
    expected_status: str = "success",
    outcome_without_expectations: str = "failure",
) -> str:
    """A standalone Python script that replays ``steps`` with Playwright (sync API, Chromium found
    and launched as the runner does) and asserts the outcome.

    Pass ``RunReport.replay_steps()`` so that smart selectors appear as the concrete selectors
    the run resolved (a step that never ran keeps its smart selector, which the script then
    resolves itself). The outcome is "success" when there is at least one ``expect_text`` and
    all of them saw their text, else "failure"; with no ``expect_text`` at all it is
    ``outcome_without_expectations`` (an agent run's verdict was the model's: a replay that
    carries every action out reaches it again). The script exits 0 iff the outcome equals
    ``expected_status``.
    """
    if expected_status not in EXPECTED_STATUSES or outcome_without_expectations not in EXPECTED_STATUSES:
        raise ValueError(f"expected_status and outcome_without_expectations must be one of {EXPECTED_STATUSES}")
    steps = validate_steps(steps)
    width, height = int(options.width), int(options.height)

    body: list[str] = []
    needs_locate = False
    for number, step in enumerate(steps, start=1):
        writer = ReplayLines(int(step_timeout_ms(step, options)))
        body.append(f"        # Step {number}: {step['action']}")
        body.extend(f"        {line}" for line in ACTION_TABLE[step["action"]].replay(step, writer))
        needs_locate = needs_locate or writer.needs_locate
    if not body:
        body.append("        pass  # no steps")
    used = {step.get("selector") for step in steps}

    constants = [
        f"HEADLESS = {bool(options.headless)!r}",
        f"WINDOW = {{'width': {width}, 'height': {height}}}",
        f"STEP_TIMEOUT_MS = {int(options.step_timeout_ms)}",
        f"NAVIGATION_TIMEOUT_MS = {int(options.navigation_timeout_ms)}",
        f"EXPECTED_STATUS = {expected_status!r}",
        f"OUTCOME_WITHOUT_EXPECTATIONS = {outcome_without_expectations!r}",
        f"SYSTEM_CHROMIUM = {SYSTEM_CHROMIUM!r}",
        # The sandbox is the replaying machine's business (chromium_sandbox()), never the worker's choice.
        f"LAUNCH_ARGS = {launch_args(width, height)!r}",
        f"SETTLE_MS = {int(SETTLE_MS)}",
        f"TEXT_PRESENT_JS = {TEXT_PRESENT_JS!r}",
    ]
    for selector, name in _NAMED_CANDIDATES.items():
        if selector in used:
            constants.append(f"{name} = {list(selector_candidates(selector))!r}")
    main = [
        "",
        "",
        "def main():",
        "    expectations = []  # (text, seen)",
        "    with sync_playwright() as playwright:",
        "        browser = playwright.chromium.launch(",
        "            executable_path=chromium_executable(),",
        "            headless=HEADLESS,",
        "            args=LAUNCH_ARGS,",
        "            chromium_sandbox=chromium_sandbox(),",
        "        )",
        "        context = browser.new_context(viewport=WINDOW, accept_downloads=False)",
        "        page = context.new_page()",
        "        page.set_default_timeout(STEP_TIMEOUT_MS)",
        "        page.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)",
        "",
        *body,
        "",
        "        browser.close()",
        "",
        "    for text, seen in expectations:",
        '        print(("seen:    " if seen else "MISSING: ") + repr(text))',
        "    if not expectations:",
        "        actual = OUTCOME_WITHOUT_EXPECTATIONS",
        "    else:",
        '        actual = "success" if all(seen for _text, seen in expectations) else "failure"',
        '    print(f"outcome: {actual} (expected: {EXPECTED_STATUS})")',
        '    assert actual == EXPECTED_STATUS, f"outcome {actual!r}, expected {EXPECTED_STATUS!r}"',
        "    return 0",
        "",
        "",
        'if __name__ == "__main__":',
        "    sys.exit(main())",
        "",
    ]
    return _HEADER + "\n".join(constants) + "\n" + _HELPERS + (_LOCATE_HELPER if needs_locate else "") + "\n".join(main)
