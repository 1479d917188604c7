"""The agent loop in a real Chromium, driven by the official SDKs against the local model server.

Nothing is patched: ``run_agent`` opens the provider's SDK client on the local server's URL
(tasks/tests/llm_server.py speaks the Chat Completions and Messages protocols) and drives
Chromium on the local test site (site_server.py).
"""

import re
import subprocess
import sys
import threading
import time

import pytest

from tasks import runner
from tasks.tests.factories import CANCEL_BOUND_SECONDS, LOCAL_SITES, browser_options, script_environment, statuses
from tasks.tests.llm_server import malformed, slow, status, text_only, tool
from tasks.tests.site_server import INJECTION_TEXT

pytestmark = pytest.mark.browser

KEY = "sk-test-agent-0123456789abcdef"
OPTIONS = browser_options(width=800, height=600, step_timeout_ms=3_000, navigation_timeout_ms=10_000)
PROVIDERS = ["openai_compatible", "anthropic"]


def agent_options(llm_server, *, provider="openai_compatible", api_key=KEY, **fields) -> runner.AgentOptions:
    base_url = llm_server.anthropic_base_url if provider == "anthropic" else llm_server.openai_base_url
    config = runner.ProviderConfig(
        provider=provider,
        model="test-model",
        api_key=api_key,
        base_url=base_url,
        call_timeout_s=10,
        egress_allowlist=LOCAL_SITES,
    )
    defaults = {"instruction": "Search the shop for a garden lamp.", "time_limit_s": 60}
    return runner.AgentOptions(provider=config, **{**defaults, **fields})


def search_script(local_site) -> list:
    """The scripted 4-answer run: open the shop, type into element 1 (the search box), click 2 (Search), done."""
    return [
        tool("goto", {"url": local_site.url("/"), "reason": "Open the shop."}),
        tool("fill", {"ref": 1, "text": "garden lamp", "reason": "Type the query into the search box."}),
        tool("click", {"ref": 2, "reason": "Submit the search."}),
        tool("done", {"success": True, "summary": "The shop lists results for garden lamp."}),
    ]


def offered(request) -> tuple:
    """What a request offers the model: everything but the conversation."""
    body = dict(request.body)
    body.pop("messages")
    return tuple(sorted((key, repr(value)) for key, value in body.items()))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_scripted_agent_searches_the_shop_and_its_replay_needs_no_model(provider, llm_server, local_site, tmp_path):
    llm_server.expected_key = KEY
    llm_server.script(search_script(local_site))

    report = runner.run_agent(agent=agent_options(llm_server, provider=provider), options=OPTIONS)

    assert report.error == "" and not report.cancelled
    assert report.expectation_met is True  # no expected_outcome: the model's done.success
    assert report.summary == "The shop lists results for garden lamp."
    assert [r.action for r in report.history] == ["goto", "fill", "click"]
    assert statuses(report) == ["ok", "ok", "ok"]
    assert [r.reason for r in report.history] == [
        "Open the shop.",
        "Type the query into the search box.",
        "Submit the search.",
    ]
    # The refs became selectors that match the elements alone, for the history and the replay.
    assert report.history[1].args == {"selector": 'input[name="q"]', "text": "garden lamp"}
    assert report.history[2].args["selector"] != "" and "ref" not in report.history[2].args
    assert "/search?q=garden+lamp" in local_site.requests
    assert len(report.frames) == 3  # a frame per action
    assert report.usage["model_calls"] == 4
    assert report.usage["input_tokens"] > 0 and report.usage["output_tokens"] > 0

    # The model saw the page: its elements with numbers, and the text, inside the page markers.
    seen = llm_server.requests[1].body["messages"][-1]
    assert "[1] input type=search" in str(seen) and "<page_content>" in str(seen)

    # The replay runs the recorded actions with no model and no key.
    files = runner.render_artifacts(
        task_id=1, run_number=1, report=report, options=OPTIONS, expected_status="success"
    ).files
    assert KEY.encode() not in files["script"] and KEY.encode() not in files["history"]
    path = tmp_path / "replay.py"
    path.write_bytes(files["script"])
    replay = subprocess.run([sys.executable, str(path)], capture_output=True, timeout=120, env=script_environment())
    assert replay.returncode == 0, replay.stderr.decode()[-2000:]
    assert b"outcome: success" in replay.stdout


def test_the_expected_outcome_is_checked_on_the_final_page(llm_server, local_site):
    answers = search_script(local_site)
    answers[-1] = tool("done", {"success": False, "summary": "Unsure."})  # the page decides, not the model
    llm_server.script(answers)

    report = runner.run_agent(
        agent=agent_options(llm_server, expected_outcome="Results for garden lamp"), options=OPTIONS
    )

    assert report.error == ""
    assert [r.action for r in report.history] == ["goto", "fill", "click", "expect_text"]
    assert report.history[-1].status == "ok"
    assert report.expectation_met is True


def test_invalid_answers_are_fed_back_and_the_model_recovers(llm_server, local_site):
    llm_server.script(
        [
            malformed('{"url": "http://'),
            tool("click", {"ref": 99, "reason": "A button that is not there."}),
            tool("goto", {"url": local_site.url("/"), "reason": "Open the shop."}),
            tool("done", {"success": True, "summary": "Opened."}),
        ]
    )

    report = runner.run_agent(agent=agent_options(llm_server), options=OPTIONS)

    assert report.error == "" and report.expectation_met is True
    assert [r.action for r in report.history] == ["goto"]
    assert report.usage["model_calls"] == 4
    second, third = (str(llm_server.requests[i].body["messages"][-1]) for i in (1, 2))
    assert "not a JSON object" in second
    assert "There is no element [99]" in third


def test_three_invalid_answers_in_a_row_fail_the_run_naming_the_last(llm_server):
    llm_server.script([malformed("nope"), text_only("I would rather chat."), tool("fly", {"to": "the moon"})])

    report = runner.run_agent(agent=agent_options(llm_server), options=OPTIONS)

    assert "3 invalid answers in a row" in report.error and "'fly'" in report.error
    assert report.expectation_met is False and report.history == []
    assert len(llm_server.requests) == 3


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_rejected_key_fails_the_run_with_the_message(provider, llm_server):
    llm_server.expected_key = "sk-the-right-one"
    llm_server.script([tool("done", {"success": True, "summary": "never"})])

    report = runner.run_agent(agent=agent_options(llm_server, provider=provider, api_key=KEY), options=OPTIONS)

    assert "provider rejected the key" in report.error
    assert KEY not in report.error
    assert len(llm_server.requests) == 1  # a 401 is not retried


def test_a_rate_limited_call_is_retried(llm_server, local_site):
    llm_server.script(
        [
            status(429, retry_after=0.2),
            tool("goto", {"url": local_site.url("/"), "reason": "Open the shop."}),
            status(503),
            tool("done", {"success": True, "summary": "Opened."}),
        ]
    )

    report = runner.run_agent(agent=agent_options(llm_server), options=OPTIONS)

    assert report.error == "" and report.expectation_met is True
    assert len(llm_server.requests) == 4 and report.usage["model_calls"] == 2


def test_max_steps_without_done_fails_the_run(llm_server, local_site):
    llm_server.script(
        [tool("goto", {"url": local_site.url(f"/search?q={n}"), "reason": "Look around."}) for n in range(3)]
    )

    report = runner.run_agent(agent=agent_options(llm_server, max_steps=2), options=OPTIONS)

    assert "max_steps (2 actions)" in report.error
    assert [r.action for r in report.history] == ["goto", "goto"]
    assert report.expectation_met is False
    assert len(llm_server.requests) == 2


def test_a_failed_action_is_reported_to_the_model_and_left_out_of_the_replay(llm_server, local_site):
    llm_server.script(
        [
            tool("goto", {"url": local_site.url("/"), "reason": "Open the shop."}),
            tool("click", {"selector": "#no-such-button", "reason": "Try a button."}),
            tool("click", {"ref": 2, "reason": "Use the Search button instead."}),
            tool("done", {"success": True, "summary": "Searched."}),
        ]
    )

    report = runner.run_agent(agent=agent_options(llm_server), options=OPTIONS)

    assert report.error == ""
    assert statuses(report) == ["ok", "failed", "ok"]
    assert "did not appear" in str(llm_server.requests[2].body["messages"][-2:])
    assert [step.get("selector") for step in report.replay_steps()] == [None, report.history[2].args["selector"]]


def test_cancel_during_a_slow_model_answer_stops_the_run_within_seconds(llm_server, local_site):
    llm_server.script([slow(30, then=tool("done", {"success": True, "summary": "too late"}))])
    asked = threading.Event()
    cancel_at: list[float] = []

    def should_cancel():
        if llm_server.requests and not cancel_at:
            cancel_at.append(time.monotonic())
        asked.set()
        return bool(cancel_at)

    report = runner.run_agent(
        agent=agent_options(llm_server, start_url=local_site.url("/")), options=OPTIONS, should_cancel=should_cancel
    )
    stopped = time.monotonic() - cancel_at[0]

    assert report.cancelled and report.error == "Run cancelled."
    assert stopped < min(5.0, CANCEL_BOUND_SECONDS), f"took {stopped:.1f} s"
    assert statuses(report) == ["ok"]  # the start page, then the cancelled model call


def test_the_page_cannot_change_what_the_model_is_offered(llm_server, local_site):
    """A page that tells the model to go elsewhere changes only the page text the model reads."""

    def run_on(path: str) -> list:
        llm_server.requests.clear()
        llm_server.script(
            [
                tool("fill", {"ref": 1, "text": "lamp", "reason": "Type the query."}),
                tool("done", {"success": True, "summary": "Typed."}),
            ]
        )
        report = runner.run_agent(agent=agent_options(llm_server, start_url=local_site.url(path)), options=OPTIONS)
        assert report.error == ""
        return list(llm_server.requests)

    clean, injected = run_on("/"), run_on("/injection")

    assert [offered(r) for r in injected] == [offered(r) for r in clean]
    assert len(injected) == 2
    first = str(injected[0].body["messages"][1:])  # after the system message: the task and the page
    assert INJECTION_TEXT[:40] in first
    # The page's text sits inside one block: its fake end marker was defused.
    assert first.count("</page_content>") == 1 and "</page-content>" in first
    assert not any("169.254.169.254" in request for request in local_site.requests)


def test_observation_lists_unique_selectors_for_the_elements(llm_server, local_site):
    llm_server.script(
        [
            tool("goto", {"url": local_site.url("/links"), "reason": "Open the links."}),
            tool("done", {"success": True, "summary": "Looked."}),
        ]
    )

    runner.run_agent(agent=agent_options(llm_server), options=OPTIONS)

    page = str(llm_server.requests[1].body["messages"][-1])
    listed = re.findall(r"\[(\d+)\] (\w+)", page)
    assert [tag for _n, tag in listed] == ["a", "a", "button"]
    assert "Hidden secret" not in page  # hidden text is not visible text
