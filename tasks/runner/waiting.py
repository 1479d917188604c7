"""Waiting in the page in short slices, and how a step that is being carried out ends.

A cancel must stop a run within about two seconds, but one Playwright wait blocks for its
whole timeout (10 s for a selector that never appears). So every wait here is cut into slices
(``WAIT_SLICE_SECONDS``, ``ACTION_SLICE_SECONDS``) and the run's cancel event is checked
between them. A call that cannot be sliced (a page load) is the driver's business: it kills
Chromium after a grace period (driver.py).

The actions (actions.py) wait through a ``StepContext`` and end a step by raising
``StepFailed`` (the run stops), ``ExpectationMissed`` (the run goes on) or ``Cancelled``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .smart_selectors import missing_element, selector_candidates

WAIT_SLICE_SECONDS = 0.5  # how long one wait may block before cancellation is checked again
ACTION_SLICE_SECONDS = 1.0  # same for an action (click, fill) that waits for its element to become actionable
SETTLE_MS = 3_000  # after a click or key press, how long to wait (at most) for a started page load

# Text matching for wait_for/expect_text: the page's rendered text (innerText, so hidden elements
# do not count), whitespace collapsed, case-insensitive. The replay script uses the same function.
TEXT_PRESENT_JS = (
    "(needle) => { const norm = (s) => (s || '').replace(/\\s+/g, ' ').trim().toLowerCase();"
    " return !!document.body && norm(document.body.innerText).includes(norm(needle)); }"
)
_TRANSIENT_ERRORS = ("Execution context was destroyed", "Cannot find context with specified id", "navigation")


class Cancelled(Exception):
    """The run is being cancelled; the step stops where it is."""


class StepFailed(Exception):
    """A step could not be carried out; the run stops."""


class ExpectationMissed(Exception):
    """An expect_text step did not see its text; the run goes on."""


class _NotYet(Exception):
    pass


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (Playwright's go on for pages), shortened to ``limit``."""
    text = str(exc).strip().splitlines()
    line = text[0].strip() if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"


def settle(page) -> None:
    """Give a page load that the last action started a moment to finish, for the screenshot."""
    from playwright.sync_api import Error as PlaywrightError

    with contextlib.suppress(PlaywrightError):
        page.wait_for_timeout(150)
        page.wait_for_load_state("load", timeout=SETTLE_MS)


@dataclass
class StepContext:
    """What carrying out one step needs besides the page: when it must be over and whether the run is cancelled.

    ``deadline`` is a ``time.monotonic()`` value; ``timeout_ms`` is the step's timeout, for
    the messages; ``cancel_event`` is the run's, set from the caller's thread.
    """

    deadline: float
    timeout_ms: int
    cancel_event: threading.Event

    def remaining_ms(self) -> int:
        return int((self.deadline - time.monotonic()) * 1000)

    def stopped(self, message: str) -> Exception:
        """What to raise for a browser error: Cancelled when it is a cancel's doing, else StepFailed(message)."""
        return Cancelled() if self.cancel_event.is_set() else StepFailed(message)

    def poll(self, attempt: Callable[[int], object], slice_seconds: float = WAIT_SLICE_SECONDS):
        """Call ``attempt(timeout_ms)`` in short slices until it returns; cancellation is checked
        between slices. Returns its result, or raises TimeoutError at the deadline."""
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

        while True:
            if self.cancel_event.is_set():
                raise Cancelled
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            slice_ms = max(1, int(min(remaining, slice_seconds) * 1000))
            try:
                return attempt(slice_ms)
            except PlaywrightTimeoutError:
                continue
            except _NotYet:
                time.sleep(min(0.15, max(0.0, self.deadline - time.monotonic())))
            except PlaywrightError as exc:
                if self.cancel_event.is_set():
                    raise Cancelled from exc
                if not any(marker in str(exc) for marker in _TRANSIENT_ERRORS):
                    raise
                time.sleep(0.1)  # the page is navigating: try again in the new document

    def locate(self, page, selector: str):
        """Wait for ``selector`` (or a smart selector's first matching candidate) to be visible.
        Returns (locator, concrete selector)."""
        from playwright.sync_api import Error as PlaywrightError

        candidates = selector_candidates(selector)
        try:
            if candidates is None:
                locator = page.locator(selector).first
                self.poll(lambda ms: locator.wait_for(state="visible", timeout=ms))
                return locator, selector

            def first_visible_candidate(_ms: int) -> str:
                for candidate in candidates:
                    concrete = f"{candidate} >> visible=true >> nth=0"
                    if page.locator(concrete).count():
                        return concrete
                raise _NotYet

            concrete = self.poll(first_visible_candidate)
            return page.locator(concrete).first, concrete
        except TimeoutError:
            raise StepFailed(f"{missing_element(selector)} (waited {self.timeout_ms} ms)") from None
        except PlaywrightError as exc:
            raise self.stopped(f"selector {selector!r}: {first_line(exc)}") from None

    def act(self, what: str, action: Callable[[int], object], *, ready: Callable[[int], object] | None = None) -> None:
        """Run a locator action once the element is actionable.

        ``ready(timeout_ms)`` (an idempotent check, e.g. a trial click) is polled in slices so a
        cancel is noticed while the element is not ready yet; then ``action`` runs once with the
        time left. Without ``ready`` the action itself is sliced, which only idempotent actions
        (fill) may be: a click or key press that timed out after it was performed must not be
        repeated (a double submit)."""
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

        try:
            if ready is None:
                self.poll(action, slice_seconds=ACTION_SLICE_SECONDS)
                return
            self.poll(ready, slice_seconds=ACTION_SLICE_SECONDS)
            if self.cancel_event.is_set():
                raise Cancelled
            action(max(1_000, self.remaining_ms()))
        except (TimeoutError, PlaywrightTimeoutError):
            raise StepFailed(f"could not {what} within {self.timeout_ms} ms (element not actionable)") from None
        except PlaywrightError as exc:
            raise self.stopped(f"could not {what}: {first_line(exc)}") from None

    def text_seen(self, page, text: str) -> bool:
        """Whether the page's visible text contains ``text`` (see TEXT_PRESENT_JS) before the deadline."""
        try:
            self.poll(lambda ms: page.wait_for_function(TEXT_PRESENT_JS, arg=text, timeout=ms, polling=100))
            return True
        except TimeoutError:
            return False

    def wait_for_load(self, page) -> None:
        """Wait for the page's load event until the deadline, at most SETTLE_MS: a slow subresource
        (an image, a late script, a tracker) is not a failure."""
        from playwright.sync_api import Error as PlaywrightError

        with contextlib.suppress(PlaywrightError):
            page.wait_for_load_state("load", timeout=max(1, min(SETTLE_MS, self.remaining_ms())))
