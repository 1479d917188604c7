"""Drive Chromium through a list of validated steps with Playwright's sync API.

Threads: Playwright's sync API keeps an asyncio loop running on the thread that uses it, and
Django refuses ORM calls on a thread with a running loop (SynchronousOnlyOperation). So the
browser lives on a thread of its own, and the caller's thread only waits, calls ``on_step`` and
``should_cancel`` (both may touch the database) and watches the clock. Cancelling sets an event
that the browser thread checks between steps and between the short slices it waits in; a call
that cannot be sliced (a page load) is cut short by killing Chromium's processes after a grace
period. The same kill stops a browser that hangs well past its step's deadline.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .chromium import chromium_executable, launch_args
from .steps import StepValidationError, selector_candidates, validate_steps

OK, FAILED, SKIPPED, CANCELLED = "ok", "failed", "skipped", "cancelled"

WAIT_SLICE_SECONDS = 0.5  # how long one wait may block before cancellation is checked again
ACTION_SLICE_SECONDS = 1.0  # same for an action (click, fill) that waits for its element to become actionable
CANCEL_POLL_SECONDS = 0.5  # how often should_cancel() is asked
CANCEL_GRACE_SECONDS = 1.5  # after a cancel, how long the browser thread may take before Chromium is killed
HANG_GRACE_SECONDS = 15.0  # how far past its deadline a phase (launch, step, close) may run before it counts as hung
STOP_WAIT_SECONDS = 15.0  # how long to wait for the browser thread to wind down after a kill
CLOSE_SECONDS = 10.0  # closing the browser and Playwright's driver
SCREENSHOT_TIMEOUT_MS = 5_000
SETTLE_MS = 3_000  # after a click or key press, how long to wait (at most) for a started page load

# Text matching for wait_for/expect_text: the page's rendered text (innerText, so hidden elements
# do not count), whitespace collapsed, case-insensitive. The replay script uses the same function.
TEXT_PRESENT_JS = (
    "(needle) => { const norm = (s) => (s || '').replace(/\\s+/g, ' ').trim().toLowerCase();"
    " return !!document.body && norm(document.body.innerText).includes(norm(needle)); }"
)
_TRANSIENT_ERRORS = ("Execution context was destroyed", "Cannot find context with specified id", "navigation")


@dataclass
class BrowserOptions:
    """How the browser is started: the task's browser settings plus the runner's timeouts."""

    headless: bool = True
    width: int = 1280
    height: int = 720
    step_timeout_ms: int = 10_000
    navigation_timeout_ms: int = 20_000


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

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "action": self.action,
            "args": dict(self.args),
            "status": self.status,
            "duration_ms": self.duration_ms,
            "error": self.error,
            "url": self.url,
        }


@dataclass
class RunReport:
    """The outcome of ``run_browser``.

    ``history`` has one record per step, in order (steps after a stop are "skipped" or
    "cancelled"); ``frames`` one PNG per executed step ("ok" or "failed"). ``expectation_met``
    is True iff the steps contain at least one ``expect_text`` and every one of them saw its
    text. ``error`` is "" when the browser ran to the end, whatever the page showed, and says
    why it stopped otherwise (also "Run cancelled." when cancelled).
    """

    steps: list[dict]
    history: list[StepRecord] = field(default_factory=list)
    frames: list[bytes] = field(default_factory=list)
    expectation_met: bool = False
    error: str = ""
    cancelled: bool = False

    def replay_steps(self) -> list[dict]:
        """The steps for ``render_script``: executed ones with the selectors they resolved to."""
        return [
            {"action": record.action, **{k: v for k, v in record.args.items() if k != "planned_selector"}}
            for record in self.history
        ]


class _Cancelled(Exception):
    pass


class _StepFailed(Exception):
    """A step could not be carried out; the run stops."""


class _ExpectationMissed(Exception):
    """An expect_text step did not see its text; the run goes on."""


class _NotYet(Exception):
    pass


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()
    line = text[0].strip() if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _process_table() -> dict[int, int]:
    """pid -> parent pid, from /proc (Linux); empty elsewhere."""
    table: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                data = stat.read()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: the fields after it follow the last ")".
        fields = data[data.rfind(b")") + 2 :].split()
        with contextlib.suppress(IndexError, ValueError):
            table[int(entry)] = int(fields[1])
    return table


def _children_of(pid: int) -> set[int]:
    return {child for child, parent in _process_table().items() if parent == pid}


def _descendants_of(roots: list[int]) -> list[int]:
    table = _process_table()
    found: list[int] = []
    frontier = list(roots)
    while frontier:
        parent = frontier.pop()
        for child, child_parent in table.items():
            if child_parent == parent and child not in found:
                found.append(child)
                frontier.append(child)
    return found


class _BrowserSession:
    """One run of the steps, on the browser thread. The caller's thread only reads its state,
    sets ``cancel_event`` and may ``kill()`` it."""

    def __init__(self, steps: list[dict], options: BrowserOptions):
        self.steps = steps
        self.options = options
        self.history = [
            StepRecord(index=i, action=s["action"], args={k: v for k, v in s.items() if k != "action"})
            for i, s in enumerate(steps)
        ]
        self.frames: list[bytes] = []
        self.error = ""
        self.cancelled = False
        self.done = 0
        # Monotonic time by which the current phase (launch, a step and its screenshot, closing)
        # should be over; the caller's watch loop kills a browser that is far past it.
        self.watch_deadline: float | None = None
        self.killed_at: float | None = None
        self.cancel_event = threading.Event()
        self.finished = threading.Event()
        self._driver_pids: list[int] = []
        self._kill_reason = ""
        self._last_kill = float("-inf")

    # -- caller's thread --------------------------------------------------------------------------

    def kill(self, reason: str) -> None:
        """SIGKILL Chromium (every process under Playwright's driver); pending browser calls then fail fast.

        Called repeatedly by the caller's watch loop until the browser thread ends; it scans /proc
        at most once a second."""
        if not self._kill_reason:
            self._kill_reason = reason
        now = time.monotonic()
        if self.killed_at is None:
            self.killed_at = now
        if now - self._last_kill < 1.0:
            return
        self._last_kill = now
        for pid in _descendants_of(self._driver_pids):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def abandon(self) -> None:
        """The browser thread did not end even after Chromium was killed: kill Playwright's driver
        too and give up on the thread (a daemon), so the caller is never blocked for good."""
        self._last_kill = float("-inf")
        self.kill(self._kill_reason or "abandoned")
        for pid in self._driver_pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if not self.error:
            self.error = "The browser did not stop after it was killed; the run was abandoned."

    def report(self) -> RunReport:
        expectations = [r for r in self.history if r.action == "expect_text"]
        return RunReport(
            steps=[dict(s) for s in self.steps],
            history=list(self.history),
            frames=list(self.frames),
            expectation_met=bool(expectations) and all(r.status == OK for r in expectations),
            error=self.error,
            cancelled=self.cancelled,
        )

    # -- browser thread ---------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 -- the thread must always report, whatever happened
            if self.cancel_event.is_set():
                self._stop_cancelled(self._first_unfinished())
            elif not self.error:
                self.error = f"Browser crashed: {_first_line(exc)}"
        finally:
            self.watch_deadline = None
            self.finished.set()

    def _first_unfinished(self) -> int:
        return next((r.index for r in self.history if r.status == SKIPPED), len(self.history))

    def _stop_cancelled(self, from_index: int) -> None:
        for record in self.history[from_index:]:
            if record.status == SKIPPED:
                record.status = CANCELLED
        self.cancelled = True
        self.error = "Run cancelled."

    def _run(self) -> None:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright

        if self.cancel_event.is_set():
            self._stop_cancelled(0)
            return
        options = self.options
        before = _children_of(os.getpid())
        launch_timeout_ms = max(options.navigation_timeout_ms, 30_000)
        self.watch_deadline = time.monotonic() + launch_timeout_ms / 1000 + CLOSE_SECONDS
        with sync_playwright() as playwright:
            self._driver_pids = sorted(_children_of(os.getpid()) - before)
            try:
                browser = playwright.chromium.launch(
                    executable_path=chromium_executable(),
                    headless=options.headless,
                    args=launch_args(options.width, options.height),
                    timeout=launch_timeout_ms,
                )
            except PlaywrightError as exc:
                if self.cancel_event.is_set():
                    self._stop_cancelled(0)
                elif not options.headless and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
                    self.error = (
                        "Could not start Chromium in headed mode: this worker has no display (DISPLAY is not set). "
                        "Use headless mode, or run the worker under a virtual display (xvfb-run)."
                    )
                else:
                    self.error = f"Could not start Chromium: {_first_line(exc)}"
                return
            try:
                context = browser.new_context(
                    viewport={"width": options.width, "height": options.height}, accept_downloads=False
                )
                page = context.new_page()
                page.set_default_timeout(options.step_timeout_ms)
                page.set_default_navigation_timeout(options.navigation_timeout_ms)
                self._run_steps(page)
            finally:
                self.watch_deadline = time.monotonic() + CLOSE_SECONDS
                with contextlib.suppress(Exception):
                    browser.close()

    def _run_steps(self, page) -> None:
        from playwright.sync_api import Error as PlaywrightError

        for index, step in enumerate(self.steps):
            record = self.history[index]
            if self.cancel_event.is_set():
                self._stop_cancelled(index)
                return
            action = step["action"]
            default_ms = self.options.navigation_timeout_ms if action == "goto" else self.options.step_timeout_ms
            timeout_ms = step.get("timeout_ms", default_ms)
            started = time.monotonic()
            deadline = started + timeout_ms / 1000
            self.watch_deadline = deadline
            stop = False
            try:
                record.args = self._perform(page, step, deadline, timeout_ms)
                record.status = OK
            except _Cancelled:
                record.status = CANCELLED
            except _ExpectationMissed as exc:
                record.status, record.error = FAILED, str(exc)
            except _StepFailed as exc:
                record.status, record.error, stop = FAILED, str(exc), True
            except PlaywrightError as exc:
                if self.cancel_event.is_set():
                    record.status = CANCELLED
                elif self._kill_reason == "hung":
                    record.status, stop = FAILED, True
                    record.error = (
                        f"the browser stopped responding for {HANG_GRACE_SECONDS:.0f} s past the step's timeout"
                    )
                else:
                    record.status, record.error, stop = FAILED, f"browser error: {_first_line(exc)}", True
            record.duration_ms = int((time.monotonic() - started) * 1000)
            # The screenshot (and a settle before it) has its own timeouts; allow for both.
            self.watch_deadline = time.monotonic() + (2 * SCREENSHOT_TIMEOUT_MS + 2 * SETTLE_MS) / 1000
            if record.status == CANCELLED:
                with contextlib.suppress(Exception):
                    record.url = page.url
                self._stop_cancelled(index)
                return
            if stop and action == "goto":
                self._settle(page)  # let Chromium show its error page, for the URL and the screenshot
            frame = self._screenshot(page)
            with contextlib.suppress(Exception):
                record.url = page.url
            if frame is not None:
                self.frames.append(frame)
            self.done += 1
            if stop:
                self.error = f"Step {index + 1} ({action}) failed: {record.error}"
                return

    def _screenshot(self, page) -> bytes | None:
        # A second try covers a screenshot taken while the page was being replaced (a failed load
        # swaps in Chromium's error page a moment after goto has returned).
        for attempt in range(2):
            try:
                return page.screenshot(type="png", timeout=SCREENSHOT_TIMEOUT_MS)
            except Exception:  # noqa: BLE001 -- a missing frame must not turn a finished step into a failure
                if attempt == 0 and not self.cancel_event.is_set():
                    self._settle(page)
        return None

    # -- waiting in slices ------------------------------------------------------------------------

    def _poll(self, deadline: float, attempt: Callable[[int], object], slice_seconds: float = WAIT_SLICE_SECONDS):
        """Call ``attempt(timeout_ms)`` in short slices until it returns; cancellation is checked
        between slices. Returns its result, or raises TimeoutError at the deadline."""
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

        while True:
            if self.cancel_event.is_set():
                raise _Cancelled
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            slice_ms = max(1, int(min(remaining, slice_seconds) * 1000))
            try:
                return attempt(slice_ms)
            except PlaywrightTimeoutError:
                continue
            except _NotYet:
                time.sleep(min(0.15, max(0.0, deadline - time.monotonic())))
            except PlaywrightError as exc:
                if self.cancel_event.is_set():
                    raise _Cancelled from exc
                if not any(marker in str(exc) for marker in _TRANSIENT_ERRORS):
                    raise
                time.sleep(0.1)  # the page is navigating: try again in the new document

    def _locate(self, page, selector: str, deadline: float, timeout_ms: int):
        """Wait for ``selector`` (or a smart selector's first matching candidate) to be visible.
        Returns (locator, concrete selector)."""
        from playwright.sync_api import Error as PlaywrightError

        candidates = selector_candidates(selector)
        try:
            if candidates is None:
                locator = page.locator(selector).first
                self._poll(deadline, lambda ms: locator.wait_for(state="visible", timeout=ms))
                return locator, selector

            def first_visible_candidate(_ms: int) -> str:
                for candidate in candidates:
                    concrete = f"{candidate} >> visible=true >> nth=0"
                    if page.locator(concrete).count():
                        return concrete
                raise _NotYet

            concrete = self._poll(deadline, first_visible_candidate)
            return page.locator(concrete).first, concrete
        except TimeoutError:
            what = {"@search-box": "no search box", "@search-button": "no search button"}.get(selector)
            if what is None and candidates is not None:
                what = f"no button or link named {selector.split('=', 1)[1]!r}"
            elif what is None:
                what = f"selector {selector!r} did not appear"
            raise _StepFailed(f"{what} (waited {timeout_ms} ms)") from None
        except PlaywrightError as exc:
            if self.cancel_event.is_set():
                raise _Cancelled from exc
            raise _StepFailed(f"selector {selector!r}: {_first_line(exc)}") from None

    def _act(
        self,
        deadline: float,
        timeout_ms: int,
        what: str,
        action: Callable[[int], object],
        *,
        ready: Callable[[int], object] | None = None,
    ) -> None:
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
                self._poll(deadline, action, slice_seconds=ACTION_SLICE_SECONDS)
                return
            self._poll(deadline, ready, slice_seconds=ACTION_SLICE_SECONDS)
            if self.cancel_event.is_set():
                raise _Cancelled
            action(max(1_000, int((deadline - time.monotonic()) * 1000)))
        except (TimeoutError, PlaywrightTimeoutError):
            raise _StepFailed(f"could not {what} within {timeout_ms} ms (element not actionable)") from None
        except PlaywrightError as exc:
            if self.cancel_event.is_set():
                raise _Cancelled from exc
            raise _StepFailed(f"could not {what}: {_first_line(exc)}") from None

    def _settle(self, page) -> None:
        """Give a page load that the last action started a moment to finish, for the screenshot."""
        from playwright.sync_api import Error as PlaywrightError

        with contextlib.suppress(PlaywrightError):
            page.wait_for_timeout(150)
            page.wait_for_load_state("load", timeout=SETTLE_MS)

    def _text_seen(self, page, text: str, deadline: float) -> bool:
        try:
            self._poll(deadline, lambda ms: page.wait_for_function(TEXT_PRESENT_JS, arg=text, timeout=ms, polling=100))
            return True
        except TimeoutError:
            return False

    def _perform(self, page, step: dict, deadline: float, timeout_ms: int) -> dict:
        """Carry out one step; return its args as executed (concrete selector)."""
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

        action = step["action"]
        args = {k: v for k, v in step.items() if k != "action"}

        if action == "goto":
            url = step["url"]
            try:
                page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
            except PlaywrightTimeoutError:
                raise _StepFailed(f"{url} did not load within {timeout_ms} ms") from None
            except PlaywrightError as exc:
                if self.cancel_event.is_set():
                    raise _Cancelled from exc
                reason = re.sub(r"^\w+\.\w+: ", "", _first_line(exc)).removesuffix(f" at {url}")
                raise _StepFailed(f"could not load {url}: {reason}") from None
            # Subresources (images, late scripts) may finish later; a slow tracker is not a failure.
            settle_ms = max(1, min(SETTLE_MS, int((deadline - time.monotonic()) * 1000)))
            with contextlib.suppress(PlaywrightError):
                page.wait_for_load_state("load", timeout=settle_ms)
            return args

        if action in ("fill", "click") or (action == "press" and "selector" in step):
            locator, concrete = self._locate(page, step["selector"], deadline, timeout_ms)
            if concrete != step["selector"]:
                args["selector"] = concrete
                args["planned_selector"] = step["selector"]
            if action == "fill":
                self._act(deadline, timeout_ms, "type into it", lambda ms: locator.fill(step["text"], timeout=ms))
            elif action == "click":
                self._act(
                    deadline,
                    timeout_ms,
                    "click it",
                    lambda ms: locator.click(timeout=ms),
                    ready=lambda ms: locator.click(trial=True, timeout=ms),
                )
                self._settle(page)
            else:
                key = step["key"]
                self._act(
                    deadline,
                    timeout_ms,
                    f"press {key}",
                    lambda ms: locator.press(key, timeout=ms),
                    ready=lambda ms: locator.wait_for(state="visible", timeout=ms),
                )
                self._settle(page)
            return args

        if action == "press":
            try:
                page.keyboard.press(step["key"])
            except PlaywrightError as exc:
                if self.cancel_event.is_set():
                    raise _Cancelled from exc
                raise _StepFailed(f"could not press {step['key']!r}: {_first_line(exc)}") from None
            self._settle(page)
            return args

        if action == "wait_for":
            if "selector" in step:
                _locator, concrete = self._locate(page, step["selector"], deadline, timeout_ms)
                if concrete != step["selector"]:
                    args["selector"] = concrete
                    args["planned_selector"] = step["selector"]
                return args
            if not self._text_seen(page, step["text"], deadline):
                raise _StepFailed(f"text {step['text']!r} did not appear within {timeout_ms} ms")
            return args

        if action == "expect_text":
            if not self._text_seen(page, step["text"], deadline):
                raise _ExpectationMissed(f"expected text {step['text']!r} not found within {timeout_ms} ms")
            return args

        raise _StepFailed(f"unknown action {action!r}")  # validate_steps makes this unreachable


def run_browser(
    *,
    steps: list[dict],
    options: BrowserOptions,
    on_step: Callable[[int, int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> RunReport:
    """Run ``steps`` in a fresh Chromium and report what happened; see RunReport.

    ``on_step(done, total)`` is called after each executed step and ``should_cancel()`` about
    every half second, both on the caller's thread. If either raises (or the caller's thread is
    interrupted, e.g. by Celery's soft time limit), the browser is stopped before the exception
    propagates. One run per process at a time: a cancel kills the Chromium processes that this
    process's Playwright driver started.
    """
    try:
        steps = validate_steps(steps)
    except StepValidationError as exc:
        return RunReport(steps=[], error=f"Invalid steps: {exc}")
    session = _BrowserSession(steps, options)
    total = len(steps)
    if should_cancel is not None and should_cancel():
        session.cancel_event.set()
        session._stop_cancelled(0)
        return session.report()

    thread = threading.Thread(target=session.run, name="gatehouse-browser", daemon=True)
    thread.start()
    reported = 0
    cancel_requested_at: float | None = None
    next_cancel_poll = time.monotonic() + CANCEL_POLL_SECONDS
    try:
        while not session.finished.wait(0.1):
            while on_step is not None and reported < session.done:
                reported += 1
                on_step(reported, total)
            now = time.monotonic()
            if cancel_requested_at is None and should_cancel is not None and now >= next_cancel_poll:
                next_cancel_poll = now + CANCEL_POLL_SECONDS
                if should_cancel():
                    cancel_requested_at = now
                    session.cancel_event.set()
            if cancel_requested_at is not None and now - cancel_requested_at > CANCEL_GRACE_SECONDS:
                session.kill("cancelled")
            watch_deadline = session.watch_deadline
            if watch_deadline is not None and now > watch_deadline + HANG_GRACE_SECONDS:
                session.kill("hung")
            if session.killed_at is not None and now - session.killed_at > STOP_WAIT_SECONDS:
                session.abandon()
                break
    except BaseException:
        session.cancel_event.set()
        session.kill("interrupted")
        thread.join(STOP_WAIT_SECONDS)
        if thread.is_alive():
            session.abandon()
        raise
    thread.join(2.0)  # the thread has finished (or was abandoned): it only has to return
    if thread.is_alive():
        session.abandon()
    while on_step is not None and reported < session.done:
        reported += 1
        on_step(reported, total)
    return session.report()
