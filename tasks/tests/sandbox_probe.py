"""What Chromium's sandbox looks like from inside a run: a standalone script that test_runner_sandbox.py
runs as a non-root user (through runuser when the tests run as root).

    python sandbox_probe.py URL     # prints one JSON object

It needs only the runner package (tasks/runner, no Django) and Playwright on its path. It reports:

- ``sandbox_page``: the text of Chromium's own chrome://sandbox page, in a Chromium launched with the
  runner's flags and environment (launch_args, browser_environment, chromium_sandbox=True);
- ``processes``: during a real ``run_browser`` of URL with the sandbox on (``no_sandbox`` False), each
  Chromium process's type, its /proc status ``Seccomp`` mode, its user and PID namespaces, and
  whether the probe's secret-looking environment variable reached it;
- ``error``: the run's error ("" when it ran to the end).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
from pathlib import Path

from tasks.runner import BrowserOptions, run_browser
from tasks.runner.chromium import browser_environment, chromium_executable, launch_args
from tasks.runner.processes import descendants_of

SECRET_NAME = "GATEHOUSE_PROBE_SECRET_KEY"


def sandbox_page_text() -> str:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_executable(),
            headless=True,
            args=launch_args(800, 600),
            chromium_sandbox=True,
            env=browser_environment(headless=True),
        )
        try:
            page = browser.new_page()
            page.goto("chrome://sandbox")
            # The page fills its table from a script: wait for its verdict.
            page.wait_for_function("document.body.innerText.includes('sandboxed')", timeout=10_000)
            return page.inner_text("body")
        finally:
            browser.close()


def chromium_process(pid: int, secret: str) -> dict | None:
    proc = Path(f"/proc/{pid}")
    try:
        command_line = (proc / "cmdline").read_bytes()
        if b"chrom" not in command_line.split(b"\0")[0].lower():
            return None  # Playwright's driver, the Debian wrapper script's shell
        status = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines() if ":" in line)
        # Chromium rewrites its children's command lines (one string, spaces between the arguments).
        kind = re.search(rb"--type=([\w-]+)", command_line)
        return {
            "pid": pid,
            "type": kind[1].decode() if kind else "browser",
            "seccomp": status.get("Seccomp", "").strip(),
            "user_ns": os.readlink(proc / "ns" / "user"),
            "pid_ns": os.readlink(proc / "ns" / "pid"),
            "secret_in_environment": secret.encode() in (proc / "environ").read_bytes(),
        }
    except OSError as error:
        return {"pid": pid, "unreadable": f"{type(error).__name__}: {error}"}


def main(url: str) -> dict:
    secret = secrets.token_urlsafe(24)
    os.environ[SECRET_NAME] = secret  # the worker's environment, as far as Chromium can tell
    seen: list[dict] = []

    def inspect(done: int, _total: int) -> None:
        if done == 1:  # the page is open, the browser still runs the next steps
            found = (chromium_process(pid, secret) for pid in descendants_of([os.getpid()]))
            seen.extend(process for process in found if process)

    steps = [
        {"action": "goto", "url": url},
        # Keeps the browser open a moment after the inspection; a missed expectation is no error.
        {"action": "expect_text", "text": "never on the page", "timeout_ms": 1_500},
    ]
    report = run_browser(
        steps=steps, options=BrowserOptions(no_sandbox=False, egress_allowlist=("127.0.0.1",)), on_step=inspect
    )
    try:
        page = sandbox_page_text()
    except Exception as error:  # noqa: BLE001 -- reported: a sandbox that cannot start is a finding here
        page = f"launch failed: {error}"
    return {"euid": os.geteuid(), "sandbox_page": page, "processes": seen, "error": report.error}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
