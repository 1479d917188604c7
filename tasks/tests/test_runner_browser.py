"""run_browser against a real Chromium and the local test website (tasks/tests/site_server.py)."""

import io
import os
import signal
import threading
import time

import pytest
from PIL import Image

from tasks.runner import BrowserOptions, plan_steps, render_gif, run_browser
from tasks.runner.processes import descendants_of
from tasks.tests import site_server

# The shared test website's fixtures (tasks/tests/site_server.py).
closed_port_url = site_server.closed_port_url
local_site = site_server.local_site

pytestmark = pytest.mark.browser

FAST = BrowserOptions(width=800, height=600, step_timeout_ms=3_000, navigation_timeout_ms=10_000)
# How long after a cancel request the run may take to return. The runner promises "within a few
# seconds" (slices of 0.5 s, then a kill after 1.5 s); the margin is for a loaded CI machine.
CANCEL_BOUND_SECONDS = 6.0


def statuses(report):
    return [record.status for record in report.history]


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.size


def chromium_descendants() -> list[int]:
    found = []
    for pid in descendants_of([os.getpid()]):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if b"chrom" in cmdline.read().lower():
                    found.append(pid)
        except OSError:
            continue
    return found


def test_explicit_steps_run_to_the_end(local_site):
    progress = []
    report = run_browser(
        steps=[
            {"action": "goto", "url": local_site.url("/")},
            {"action": "fill", "selector": "input[name=q]", "text": "lamp"},
            {"action": "click", "selector": "button[type=submit]"},
            {"action": "wait_for", "text": "Results for"},
            {"action": "expect_text", "text": "results for LAMP"},  # case and spacing do not matter
        ],
        options=FAST,
        on_step=lambda done, total: progress.append((done, total, threading.current_thread().name)),
    )
    assert report.error == ""
    assert report.cancelled is False
    assert report.expectation_met is True
    assert statuses(report) == ["ok"] * 5
    assert [(done, total) for done, total, _thread in progress] == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    # Callbacks run on the caller's thread, where Django's ORM works (no running asyncio loop).
    assert {thread for _done, _total, thread in progress} == {threading.current_thread().name}
    assert len(report.frames) == 5
    assert {png_size(frame) for frame in report.frames} == {(800, 600)}
    assert report.history[0].url == local_site.url("/")
    assert report.history[-1].url == local_site.url("/search?q=lamp")
    assert "/search?q=lamp" in local_site.requests
    assert all(record.duration_ms >= 0 for record in report.history)
    assert report.history[1].to_dict() == {
        "index": 1,
        "action": "fill",
        "args": {"selector": "input[name=q]", "text": "lamp"},
        "status": "ok",
        "duration_ms": report.history[1].duration_ms,
        "error": "",
        "url": local_site.url("/"),
    }


def test_planned_search_finds_the_search_box_and_presses_enter(local_site):
    steps = plan_steps(
        start_url=local_site.url("/"),
        search_input_input="garden chair",
        search_input_action="submit",
        expected_outcome="Results for garden chair",
    )
    report = run_browser(steps=steps, options=FAST)
    assert report.error == ""
    assert report.expectation_met is True
    assert statuses(report) == ["ok", "ok", "ok", "ok"]
    fill = report.history[1]
    assert fill.args["planned_selector"] == "@search-box"
    assert not fill.args["selector"].startswith("@")  # the concrete selector the driver used
    assert fill.args["text"] == "garden chair"
    assert report.history[-1].url == local_site.url("/search?q=garden+chair")
    # The replay steps carry the concrete selectors, not the smart ones.
    replay = report.replay_steps()
    assert replay[1] == {"action": "fill", "selector": fill.args["selector"], "text": "garden chair"}


def test_planned_search_clicks_a_button_by_its_label(local_site):
    steps = plan_steps(
        start_url=local_site.url("/catalogue"),
        search_input_input="oak table",
        search_input_action="Find",
        expected_outcome="Results for oak table",
    )
    report = run_browser(steps=steps, options=FAST)
    assert report.error == ""
    assert report.expectation_met is True
    click = report.history[2]
    assert click.args["planned_selector"] == "@button=Find"
    assert 'name="Find"' in click.args["selector"]
    assert report.history[-1].url.endswith("/search?q=oak%20table")


def test_planned_search_waits_for_a_search_box_that_appears_late(local_site):
    steps = plan_steps(
        start_url=local_site.url("/late"),
        search_input_input="sofa",
        search_input_action="click",
        expected_outcome="Results for sofa",
    )
    report = run_browser(steps=steps, options=FAST)
    assert report.error == ""
    assert report.expectation_met is True
    assert report.history[2].args["planned_selector"] == "@search-button"


def test_an_unmet_expectation_does_not_stop_the_run(local_site):
    report = run_browser(
        steps=[
            {"action": "goto", "url": local_site.url("/links")},
            {"action": "expect_text", "text": "Unicorns", "timeout_ms": 1_000},
            {"action": "expect_text", "text": "Hidden secret", "timeout_ms": 1_000},  # display:none is not seen
            {"action": "click", "selector": "text=Show results"},
            {"action": "expect_text", "text": "Results for from-link"},
        ],
        options=FAST,
    )
    assert report.error == ""
    assert report.expectation_met is False
    assert statuses(report) == ["ok", "failed", "failed", "ok", "ok"]
    assert "Unicorns" in report.history[1].error
    assert len(report.frames) == 5


def test_a_click_that_starts_a_slow_navigation_is_not_repeated(local_site):
    # Playwright's click waits for the navigation it starts; a click that "times out" there has
    # already happened, so retrying it would submit twice.
    slow = "/slow?seconds=2&from=link"
    before = local_site.requests.count(slow)
    report = run_browser(
        steps=[
            {"action": "goto", "url": local_site.url("/links")},
            {"action": "click", "selector": "text=Slow link"},
            {"action": "expect_text", "text": "Slow page"},
        ],
        options=FAST,
    )
    assert statuses(report) == ["ok", "ok", "ok"], report.error
    assert local_site.requests.count(slow) - before == 1


def test_no_expect_text_means_expectation_not_met(local_site):
    report = run_browser(
        steps=[
            {"action": "goto", "url": local_site.url("/links")},
            {"action": "click", "selector": "#reveal"},
            {"action": "wait_for", "text": "Revealed text"},
        ],
        options=FAST,
    )
    assert report.error == ""
    assert statuses(report) == ["ok", "ok", "ok"]
    assert report.expectation_met is False


def test_an_unreachable_page_fails_the_run_and_keeps_what_was_done(local_site, closed_port_url):
    report = run_browser(
        steps=[
            {"action": "goto", "url": local_site.url("/")},
            {"action": "goto", "url": closed_port_url},
            {"action": "fill", "selector": "input", "text": "x"},
            {"action": "expect_text", "text": "x"},
        ],
        options=FAST,
    )
    assert statuses(report) == ["ok", "failed", "skipped", "skipped"]
    assert report.error.startswith("Step 2 (goto) failed: could not load")
    assert "ERR_CONNECTION_REFUSED" in report.error
    assert "ERR_CONNECTION_REFUSED" in report.history[1].error
    assert len(report.frames) == 2  # after the good step and after the failing one
    assert report.expectation_met is False
    assert report.cancelled is False


def test_a_selector_that_never_appears_fails_within_the_step_timeout(local_site):
    started = time.monotonic()
    report = run_browser(
        steps=[
            {"action": "goto", "url": local_site.url("/")},
            {"action": "click", "selector": "#does-not-exist", "timeout_ms": 1_500},
            {"action": "expect_text", "text": "Gatehouse"},
        ],
        options=FAST,
    )
    elapsed = time.monotonic() - started
    assert statuses(report) == ["ok", "failed", "skipped"]
    assert report.error == "Step 2 (click) failed: selector '#does-not-exist' did not appear (waited 1500 ms)"
    assert 1_500 <= report.history[1].duration_ms < 1_500 + 2_000
    assert len(report.frames) == 2
    assert elapsed < 30  # launch + two steps; a runaway wait would take the 10 s default or more


def test_a_page_without_a_search_box_fails_the_planned_fill(local_site):
    steps = plan_steps(
        start_url=local_site.url("/links"), search_input_input="x", search_input_action="", expected_outcome="x"
    )
    report = run_browser(steps=steps, options=BrowserOptions(step_timeout_ms=1_000))
    assert statuses(report) == ["ok", "failed", "skipped", "skipped"]
    assert report.error == "Step 2 (fill) failed: no search box (waited 1000 ms)"


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
        options=BrowserOptions(navigation_timeout_ms=45_000),
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
        options=BrowserOptions(headless=False),
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
