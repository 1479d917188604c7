"""run_browser against a real Chromium and the local test website: steps, plans, failures that stop a run."""

import threading
import time

import pytest

from tasks.runner import plan_steps, run_browser
from tasks.tests.factories import FAST, browser_options, png_size, statuses

pytestmark = pytest.mark.browser


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
    # The egress proxy answers for the closed port; the runner reads its answer as a failed load.
    assert report.error.endswith("the server could not be reached")
    assert report.history[1].error == f"could not load {closed_port_url}: the server could not be reached"
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
    report = run_browser(steps=steps, options=browser_options(step_timeout_ms=1_000))
    assert statuses(report) == ["ok", "failed", "skipped", "skipped"]
    assert report.error == "Step 2 (fill) failed: no search box (waited 1000 ms)"
