#!/usr/bin/env python
"""Measure an agent run: wall time, model calls, and the loop's own overhead per step.

The scripted 4-answer run of the tests (open the shop, type into its search box, click Search,
done) against the local model server (the official openai SDK speaking Chat Completions to
tasks/tests/llm_server.py) and the local test site, in a real Chromium. Each phase is timed by
wrapping the loop's methods (this script only; nothing in the runner is instrumented):

- model: ``AgentLoop._ask`` (the SDK call, its HTTP round trip to the local server, parsing);
- browser: ``_BrowserSession.run_step`` (the action, its settle and the screenshot) and
  ``AgentLoop._observe`` (reading the page);
- loop: the rest of the conversation (validation, building the turns, bookkeeping), the
  figure the design bounds (< 50 ms per step).

    .venv/bin/python bench/agent_overhead.py --runs 5

Run as root, add CHROMIUM_NO_SANDBOX=true (Chromium's sandbox does not start as root).
"""

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tasks import runner  # noqa: E402
from tasks.runner import agent, driver  # noqa: E402
from tasks.tests.llm_server import LLMServer, tool  # noqa: E402
from tasks.tests.site_server import LocalSite  # noqa: E402

SPENT: dict[str, float] = defaultdict(float)


def timed(owner, name: str, phase: str) -> None:
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            SPENT[phase] += time.perf_counter() - started

    setattr(owner, name, wrapper)


def one_run(server: LLMServer, site: LocalSite, options: runner.BrowserOptions) -> dict:
    server.script(
        [
            tool("goto", {"url": site.url("/"), "reason": "Open the shop."}),
            tool("fill", {"ref": 1, "text": "garden lamp", "reason": "Type the query."}),
            tool("click", {"ref": 2, "reason": "Search."}),
            tool("done", {"success": True, "summary": "Results are shown."}),
        ]
    )
    config = runner.ProviderConfig(
        provider="openai_compatible",
        model="bench",
        api_key="sk-bench",
        base_url=server.openai_base_url,
        egress_allowlist=("127.0.0.1",),
    )
    SPENT.clear()
    started = time.perf_counter()
    report = runner.run_agent(agent=runner.AgentOptions(provider=config, instruction="Search"), options=options)
    wall = time.perf_counter() - started
    assert report.error == "" and report.expectation_met, report.error
    calls = report.usage["model_calls"]
    loop = SPENT["converse"] - SPENT["model"] - SPENT["observe"] - SPENT["step"]
    return {
        "wall_s": wall,
        "model_calls": calls,
        "model_ms": SPENT["model"] * 1000,
        "browser_ms": (SPENT["step"] + SPENT["observe"]) * 1000,
        "loop_ms_per_step": loop * 1000 / calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="agent runs (default 5)")
    args = parser.parse_args()
    timed(agent.AgentLoop, "_converse", "converse")
    timed(agent.AgentLoop, "_ask", "model")
    timed(agent.AgentLoop, "_observe", "observe")
    timed(driver._BrowserSession, "run_step", "step")
    no_sandbox = os.environ.get("CHROMIUM_NO_SANDBOX", "").lower() == "true"
    options = runner.BrowserOptions(egress_allowlist=("127.0.0.1",), no_sandbox=no_sandbox)
    server = LLMServer().start()
    try:
        with LocalSite() as site:
            results = [one_run(server, site, options) for _ in range(args.runs)]
    finally:
        server.stop()
    print(f"{args.runs} runs of the scripted 4-answer agent run (3 actions + done), medians:")
    for key in ("wall_s", "model_calls", "model_ms", "browser_ms", "loop_ms_per_step"):
        values = [r[key] for r in results]
        print(f"  {key:18} {statistics.median(values):10.2f}   (min {min(values):.2f}, max {max(values):.2f})")


if __name__ == "__main__":
    main()
