"""Drive Chromium through a list of validated steps with Playwright's sync API.

Threads: Playwright's sync API keeps an asyncio loop running on the thread that uses it, and
Django refuses ORM calls on a thread with a running loop (SynchronousOnlyOperation). So the
browser lives on a thread of its own, and the caller's thread only waits, calls ``on_step`` and
``should_cancel`` (both may touch the database) and watches the clock. Cancelling sets an event
that the browser thread checks between steps and between the short slices it waits in
(waiting.py); a call that cannot be sliced (a page load) is cut short by killing Chromium's
processes after a grace period (processes.py). The same kill stops a browser that hangs well
past its step's deadline.

What each step does is its action's business (actions.py); this module runs them in order,
records each one and takes the screenshots (shrunk at once by frames.FrameStore).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from . import waiting
from .actions import ACTION_TABLE, execute_step, step_timeout_ms
from .chromium import browser_environment, chromium_executable, egress_args, launch_args, sandbox_failure_message
from .egress_proxy import EgressProxy, proxy_failure
from .frames import FrameStore
from .processes import children_of, descendants_of, kill_all
from .report import (
    CANCELLED,
    EXPECTATION_MISSED,
    FAILED,
    OK,
    SKIPPED,
    STEP_FAILED,
    STEP_FATAL,
    BrowserOptions,
    RunReport,
    StepRecord,
)

if TYPE_CHECKING:
    from .agent import AgentLoop, AgentOptions
from .steps import StepValidationError, validate_steps
from .waiting import Cancelled, ExpectationMissed, StepContext, StepFailed, first_line

CANCEL_POLL_SECONDS = 0.5  # how often should_cancel() is asked
CANCEL_GRACE_SECONDS = 1.5  # after a cancel, how long the browser thread may take before Chromium is killed
HANG_GRACE_SECONDS = 15.0  # how far past its deadline a phase (launch, step, close) may run before it counts as hung
STOP_WAIT_SECONDS = 15.0  # how long to wait for the browser thread to wind down after a kill
CLOSE_SECONDS = 10.0  # closing the browser and Playwright's driver
SCREENSHOT_TIMEOUT_MS = 5_000
# JPEG, not PNG: Chromium encodes a 1920x1080 JPEG in ~85 ms against ~450 ms for a PNG, and Pillow
# decodes it at reduced scale (gif.open_frame); after the shrink to the GIF's width the difference
# from a PNG screenshot is under one level in 255, less than the palette itself changes.
SCREENSHOT_JPEG_QUALITY = 90


def _step_args(step: dict) -> dict:
    return {key: value for key, value in step.items() if key != "action"}


class _BrowserSession:
    """One run of the steps, on the browser thread. The caller's thread only reads its state,
    sets ``cancel_event`` and may ``kill()`` it."""

    def __init__(self, steps: list[dict], options: BrowserOptions, agent: AgentLoop | None = None):
        self.steps = list(steps)
        self.options = options
        # With an agent, ``steps`` are only the start (the start page); the agent adds the rest as it goes.
        self.agent = agent
        self.history = [StepRecord(index=i, action=s["action"], args=_step_args(s)) for i, s in enumerate(steps)]
        self.frames = FrameStore(width=options.frame_width, max_bytes=options.max_frame_bytes)
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
        self._egress: EgressProxy | None = None
        self._navigated_hosts: list[str] = []  # hosts the page's main frame asked for during the current step
        self._proxy_answer = ""  # why the proxy answered a main-frame navigation itself during the current step
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
        kill_all(descendants_of(self._driver_pids))

    def abandon(self) -> None:
        """The browser thread did not end even after Chromium was killed: kill Playwright's driver
        too and give up on the thread (a daemon), so the caller is never blocked for good."""
        self._last_kill = float("-inf")
        self.kill(self._kill_reason or "abandoned")
        kill_all(self._driver_pids)
        if not self.error:
            self.error = "The browser did not stop after it was killed; the run was abandoned."

    def report(self) -> RunReport:
        expectations = [r for r in self.history if r.action == "expect_text"]
        report = RunReport(
            steps=[dict(s) for s in self.steps],
            history=list(self.history),
            frames=self.frames.frames,
            frame_stride=self.frames.stride,
            expectation_met=bool(expectations) and all(r.status == OK for r in expectations),
            error=self.error,
            cancelled=self.cancelled,
        )
        if self.agent is not None:
            self.agent.complete_report(report)
        return report

    # -- browser thread ---------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 -- the thread must always report, whatever happened
            if self.cancel_event.is_set():
                self._stop_cancelled(self._first_unfinished())
            elif not self.error:
                self.error = f"Browser crashed: {first_line(exc)}"
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
        launch_timeout_ms = max(options.navigation_timeout_ms, 30_000)
        self.watch_deadline = time.monotonic() + launch_timeout_ms / 1000 + CLOSE_SECONDS
        self._egress = egress = EgressProxy(options.egress_allowlist)
        try:
            egress.start()
        except (OSError, RuntimeError) as exc:
            self.error = f"Could not start the egress proxy: {first_line(exc)}"
            return
        with contextlib.ExitStack() as stack:
            stack.callback(egress.stop)
            before = children_of(os.getpid())
            playwright = stack.enter_context(sync_playwright())
            self._driver_pids = sorted(children_of(os.getpid()) - before)
            try:
                browser = playwright.chromium.launch(
                    executable_path=chromium_executable(),
                    headless=options.headless,
                    args=[
                        *launch_args(options.width, options.height, no_sandbox=options.no_sandbox),
                        *egress_args(egress.url),
                    ],
                    # Playwright adds --no-sandbox itself unless told otherwise: launch_args decides.
                    chromium_sandbox=True,
                    env=browser_environment(headless=options.headless),
                    timeout=launch_timeout_ms,
                )
            except PlaywrightError as exc:
                if self.cancel_event.is_set():
                    self._stop_cancelled(0)
                elif sandbox_problem := sandbox_failure_message(str(exc), euid=os.geteuid()):
                    self.error = sandbox_problem
                elif not options.headless and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
                    self.error = (
                        "Could not start Chromium in headed mode: this worker has no display (DISPLAY is not set). "
                        "Use headless mode, or run the worker under a virtual display (xvfb-run)."
                    )
                else:
                    self.error = f"Could not start Chromium: {first_line(exc)}"
                return
            try:
                context = browser.new_context(
                    viewport={"width": options.width, "height": options.height},
                    accept_downloads=False,
                    service_workers="block",  # they outlive the page and fetch outside the requests watched here
                )
                page = context.new_page()
                page.on("request", lambda request: self._note_navigation(page, request))
                page.on("response", lambda response: self._note_proxy_answer(page, response))
                page.set_default_timeout(options.step_timeout_ms)
                page.set_default_navigation_timeout(options.navigation_timeout_ms)
                self._run_steps(page)
            finally:
                self.watch_deadline = time.monotonic() + CLOSE_SECONDS
                with contextlib.suppress(Exception):
                    browser.close()

    def _run_steps(self, page) -> None:
        if self.agent is not None:
            self.agent.drive(self, page)
            return
        for index, step in enumerate(self.steps):
            if self.cancel_event.is_set():
                self._stop_cancelled(index)
                return
            outcome = self.run_step(page, index)
            if outcome == CANCELLED:
                return
            if outcome in (STEP_FAILED, STEP_FATAL):
                self.error = f"Step {index + 1} ({step['action']}) failed: {self.history[index].error}"
                return

    def add_step(self, step: dict, *, reason: str | None = None) -> int:
        """Append a step chosen during the run (the agent's), with its record; returns its index."""
        index = len(self.steps)
        self.steps.append(step)
        self.history.append(StepRecord(index=index, action=step["action"], args=_step_args(step), reason=reason))
        return index

    def run_step(self, page, index: int) -> str:
        """Carry out step ``index``, record it and take its screenshot. Returns OK, EXPECTATION_MISSED
        (the run goes on), STEP_FAILED (an explicit run stops; an agent may try something else),
        STEP_FATAL (the run cannot go on: a blocked navigation, a hung or closed browser) or CANCELLED
        (the run is marked cancelled already)."""
        from playwright.sync_api import Error as PlaywrightError

        step, record = self.steps[index], self.history[index]
        timeout_ms = step_timeout_ms(step, self.options)
        started = time.monotonic()
        context = StepContext(
            deadline=started + timeout_ms / 1000, timeout_ms=timeout_ms, cancel_event=self.cancel_event
        )
        self.watch_deadline = context.deadline
        outcome = OK
        self._navigated_hosts.clear()
        self._proxy_answer = ""
        try:
            record.args = execute_step(page, step, context)
            record.status = OK
        except Cancelled:
            record.status = outcome = CANCELLED
        except ExpectationMissed as exc:
            record.status, record.error, outcome = FAILED, str(exc), EXPECTATION_MISSED
        except StepFailed as exc:
            record.status, record.error, outcome = FAILED, str(exc), STEP_FAILED
        except PlaywrightError as exc:
            if self.cancel_event.is_set():
                record.status = outcome = CANCELLED
            elif self._kill_reason == "hung":
                record.status, outcome = FAILED, STEP_FATAL
                record.error = f"the browser stopped responding for {HANG_GRACE_SECONDS:.0f} s past the step's timeout"
            else:
                record.status, record.error = FAILED, f"browser error: {first_line(exc)}"
                outcome = STEP_FATAL if page.is_closed() else STEP_FAILED
        if blocked := self._blocked_navigation():
            record.status, record.error, outcome = FAILED, blocked, STEP_FATAL
        elif self._proxy_answer and outcome != CANCELLED:
            record.status, record.error, outcome = FAILED, self._proxy_answer, STEP_FAILED
        record.duration_ms = int((time.monotonic() - started) * 1000)
        # The screenshot (and a settle before it) has its own timeouts; allow for both.
        self.watch_deadline = time.monotonic() + (2 * SCREENSHOT_TIMEOUT_MS + 2 * waiting.SETTLE_MS) / 1000
        if outcome == CANCELLED:
            with contextlib.suppress(Exception):
                record.url = page.url
            self._stop_cancelled(index)
            return CANCELLED
        if outcome in (STEP_FAILED, STEP_FATAL) and ACTION_TABLE[step["action"]].navigates:
            waiting.settle(page)  # let Chromium show its error page, for the URL and the screenshot
        frame = self._screenshot(page)
        with contextlib.suppress(Exception):
            record.url = page.url
        if frame is not None:
            self.frames.add(frame)  # shrunk now; the full-size screenshot is dropped here
        self.done += 1
        return outcome

    def _note_navigation(self, page, request) -> None:
        if request.is_navigation_request() and request.frame == page.main_frame:
            self._navigated_hosts.append(urlsplit(request.url).hostname or "")

    def _note_proxy_answer(self, page, response) -> None:
        """A page load the proxy answered itself (a 502: the name did not resolve, the server did not
        answer) is a failed load, as it would be without a proxy, not a page."""
        request = response.request
        main_frame_load = request.is_navigation_request() and request.frame == page.main_frame
        if main_frame_load and (failure := proxy_failure(response.headers)):
            self._proxy_answer = f"could not load {request.url}: {failure}"

    def _blocked_navigation(self) -> str:
        """Why the egress proxy refused a page the main frame went to during this step, or "".

        The proxy reports a refusal before it answers, so the report is in by the time the step
        has seen the answer; one short wait covers the reading thread being a moment behind.
        """
        if not self._navigated_hosts or self._egress is None:
            return ""
        for attempt in range(2):
            blocked = self._egress.blocked_hosts()
            host = next((h for h in self._navigated_hosts if h in blocked), None)
            if host is not None:
                return blocked[host]
            if attempt == 0:
                time.sleep(0.05)
        return ""

    def _screenshot(self, page) -> bytes | None:
        # A second try covers a screenshot taken while the page was being replaced (a failed load
        # swaps in Chromium's error page a moment after goto has returned).
        for attempt in range(2):
            try:
                return page.screenshot(
                    type="jpeg", quality=SCREENSHOT_JPEG_QUALITY, scale="css", timeout=SCREENSHOT_TIMEOUT_MS
                )
            except Exception:  # noqa: BLE001 -- a missing frame must not turn a finished step into a failure
                if attempt == 0 and not self.cancel_event.is_set():
                    waiting.settle(page)
        return None


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
    return _drive(_BrowserSession(steps, options), total=len(steps), on_step=on_step, should_cancel=should_cancel)


def run_agent(
    *,
    agent: AgentOptions,
    options: BrowserOptions,
    on_step: Callable[[int, int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> RunReport:
    """Let the model in ``agent`` drive a fresh Chromium (agent.py); the callbacks as for ``run_browser``.

    ``total`` in ``on_step`` is the most steps the run may take (the start page plus max_steps).
    """
    from .agent import AgentLoop

    loop = AgentLoop(agent)
    start = loop.start_steps()
    session = _BrowserSession(start, options, agent=loop)
    return _drive(session, total=len(start) + agent.max_steps, on_step=on_step, should_cancel=should_cancel)


def _drive(
    session: _BrowserSession,
    *,
    total: int,
    on_step: Callable[[int, int], None] | None,
    should_cancel: Callable[[], bool] | None,
) -> RunReport:
    """Run the session on the browser thread; this thread reports progress, polls the cancel, watches the clock."""
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
