"""run_browser stopping: cancel, a failing callback, a browser that cannot start or hangs; the GIF of a run."""

import io
import os
import signal
import time

import pytest
from PIL import Image

from tasks.runner import render_gif, run_browser
from tasks.tests.factories import CANCEL_BOUND_SECONDS, FAST, browser_options, chromium_descendants, statuses

pytestmark = pytest.mark.browser


def _cancel_after(condition, delay: float):
    """should_cancel that answers True `delay` seconds after `condition()` first held; records when."""
    state = {"armed_at": None, "requested_at": None}

    def should_cancel() -> bool:
        now = time.monotonic()
        if state["armed_at"] is None and condition():
            state["armed_at"] = now
        if state["armed_at"] is not None and now - state["armed_at"] >= delay:
            state["requested_at"] = state["requested_at"] or now
            return True
        return False

    return should_cancel, state


def test_cancel_stops_a_long_wait_within_seconds(local_site):
    done = []
    should_cancel, state = _cancel_after(lambda: bool(done), delay=1.0)
    report = run_browser(
        steps=[
            {"action": "goto", "url": local_site.url("/")},
            {"action": "wait_for", "text": "never shown", "timeout_ms": 60_000},
            {"action": "expect_text", "text": "Gatehouse"},
        ],
        options=FAST,
        on_step=lambda n, total: done.append(n),
        should_cancel=should_cancel,
    )
    assert time.monotonic() - state["requested_at"] < CANCEL_BOUND_SECONDS
    assert report.cancelled is True
    assert report.error == "Run cancelled."
    assert statuses(report) == ["ok", "cancelled", "cancelled"]
    assert len(report.frames) == 1
    assert chromium_descendants() == []


def test_cancel_stops_a_hanging_page_load_within_seconds(local_site):
    slow = "/slow?seconds=30"
    should_cancel, state = _cancel_after(lambda: slow in local_site.requests, delay=0.5)
    report = run_browser(
        steps=[{"action": "goto", "url": local_site.url(slow)}, {"action": "expect_text", "text": "Slow page"}],
        options=browser_options(navigation_timeout_ms=45_000),
        should_cancel=should_cancel,
    )
    assert state["requested_at"] is not None
    assert time.monotonic() - state["requested_at"] < CANCEL_BOUND_SECONDS
    assert report.cancelled is True
    assert statuses(report) == ["cancelled", "cancelled"]
    assert report.frames == []
    assert chromium_descendants() == []


def test_cancel_before_the_start_launches_nothing(local_site):
    before = len(local_site.requests)
    report = run_browser(
        steps=[{"action": "goto", "url": local_site.url("/")}], options=FAST, should_cancel=lambda: True
    )
    assert report.cancelled is True
    assert statuses(report) == ["cancelled"]
    assert len(local_site.requests) == before


def test_a_failing_callback_stops_the_browser_and_propagates(local_site):
    def on_step(done, total):
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError, match="database went away"):
        run_browser(
            steps=[
                {"action": "goto", "url": local_site.url("/")},
                {"action": "wait_for", "text": "never shown", "timeout_ms": 60_000},
            ],
            options=FAST,
            on_step=on_step,
        )
    assert chromium_descendants() == []


def test_chromium_that_cannot_start_is_a_readable_error(local_site, monkeypatch):
    monkeypatch.setenv("CHROMIUM_PATH", "/nonexistent/chromium")
    report = run_browser(steps=[{"action": "goto", "url": local_site.url("/")}], options=FAST)
    assert report.error.startswith("Could not start Chromium:")
    assert statuses(report) == ["skipped"]
    assert report.frames == []


def test_invalid_steps_are_reported_not_run():
    report = run_browser(steps=[{"action": "goto", "url": "file:///etc/passwd"}], options=FAST)
    assert report.error.startswith("Invalid steps:")
    assert report.history == []


def test_the_gif_of_a_run_has_a_frame_per_executed_step(local_site, closed_port_url):
    report = run_browser(
        steps=[
            {"action": "goto", "url": local_site.url("/")},
            {"action": "fill", "selector": "input[name=q]", "text": "lamp"},
            {"action": "press", "selector": "input[name=q]", "key": "Enter"},
            {"action": "expect_text", "text": "Results for lamp"},
            {"action": "expect_text", "text": "Results for lamp"},  # an identical screenshot: still its own frame
            {"action": "goto", "url": closed_port_url},
            {"action": "click", "selector": "a"},
        ],
        options=FAST,
    )
    executed = [r for r in report.history if r.status in ("ok", "failed")]
    assert len(executed) == 6 and len(report.frames) == 6
    gif = render_gif(report.frames, max_width=400)
    with Image.open(io.BytesIO(gif)) as image:
        assert image.format == "GIF"
        assert image.is_animated
        assert image.n_frames == len(executed)
        assert image.width <= 400


def test_headed_mode_without_a_display_says_so(local_site, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    report = run_browser(
        steps=[{"action": "goto", "url": local_site.url("/")}],
        options=browser_options(headless=False),
    )
    assert report.error.startswith("Could not start Chromium in headed mode: this worker has no display")
    assert statuses(report) == ["skipped"]


def test_a_browser_that_hangs_is_killed_not_waited_for(local_site, monkeypatch):
    # Freeze Chromium (SIGSTOP) after the first step: the screenshots time out, and closing the
    # browser would never return by itself.
    from tasks.runner import driver, waiting

    monkeypatch.setattr(driver, "SCREENSHOT_TIMEOUT_MS", 500)
    monkeypatch.setattr(waiting, "SETTLE_MS", 500)
    monkeypatch.setattr(driver, "CLOSE_SECONDS", 1.0)
    monkeypatch.setattr(driver, "HANG_GRACE_SECONDS", 1.0)
    frozen = []

    def freeze_chromium(done, total):
        if done == 1:
            for pid in chromium_descendants():
                os.kill(pid, signal.SIGSTOP)
                frozen.append(pid)

    started = time.monotonic()
    report = run_browser(
        steps=[
            {"action": "goto", "url": local_site.url("/")},
            {"action": "expect_text", "text": "never shown", "timeout_ms": 3_000},
        ],
        options=FAST,
        on_step=freeze_chromium,
    )
    assert frozen
    assert time.monotonic() - started < 60  # without the watchdog this never returns
    assert statuses(report)[0] == "ok"
    assert report.expectation_met is False
    assert chromium_descendants() == []
