#!/usr/bin/env python
"""Measure what the egress proxy adds to a page load: the local test site loaded N times, with and without it.

One Chromium per mode, started with the runner's own flags (tasks/runner/chromium.py); each load is a
fresh page (so no kept-alive connection from the previous load helps) timed from goto to its "load"
event. The proxy is started exactly as a run starts it (EgressProxy), allowing the site's address.

    .venv/bin/python bench/egress_latency.py --loads 20

Run as root, add CHROMIUM_NO_SANDBOX=true (Chromium's sandbox does not start as root).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import sync_playwright  # noqa: E402

from tasks.runner.chromium import browser_environment, chromium_executable, egress_args, launch_args  # noqa: E402
from tasks.runner.egress_proxy import EgressProxy  # noqa: E402
from tasks.tests.site_server import LocalSite  # noqa: E402


def load_times(playwright, url: str, loads: int, extra_args: list[str]) -> list[float]:
    no_sandbox = os.environ.get("CHROMIUM_NO_SANDBOX", "").lower() == "true"
    browser = playwright.chromium.launch(
        executable_path=chromium_executable(),
        args=[*launch_args(1280, 720, no_sandbox=no_sandbox), *extra_args],
        chromium_sandbox=True,
        env=browser_environment(headless=True),
    )
    try:
        context = browser.new_context(service_workers="block")
        context.new_page().goto(url)  # warm-up: the browser's own start-up is not a page load
        times = []
        for _ in range(loads):
            page = context.new_page()
            started = time.perf_counter()
            page.goto(f"{url}?t={time.perf_counter_ns()}", wait_until="load")
            times.append((time.perf_counter() - started) * 1000)
            page.close()
        return times
    finally:
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=20, help="page loads per mode (default 20)")
    args = parser.parse_args()
    with LocalSite() as site, sync_playwright() as playwright:
        url = site.url("/")
        direct = load_times(playwright, url, args.loads, [])
        with EgressProxy(("127.0.0.1",)) as proxy:
            proxied = load_times(playwright, url, args.loads, egress_args(proxy.url))
    for name, times in (("direct", direct), ("through the egress proxy", proxied)):
        print(f"{name:>26}: median {statistics.median(times):6.2f} ms  (min {min(times):.2f}, max {max(times):.2f})")
    print(f"{'added by the proxy':>26}: {statistics.median(proxied) - statistics.median(direct):+.2f} ms per load")


if __name__ == "__main__":
    main()
