"""Finding and killing the Chromium processes of this run, through /proc (Linux).

A cancelled or hung browser call (a page load) cannot be interrupted from Python, and
Playwright's own close waits for the browser. SIGKILLing Chromium makes every pending call
fail at once. Chromium's processes are found as the descendants of the Playwright driver
process that this run started (the children of this process that appeared when Playwright
started), so one run per process at a time.
"""

from __future__ import annotations

import contextlib
import os
import signal


def process_table() -> dict[int, int]:
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


def children_of(pid: int) -> set[int]:
    return {child for child, parent in process_table().items() if parent == pid}


def descendants_of(roots: list[int]) -> list[int]:
    table = process_table()
    found: list[int] = []
    frontier = list(roots)
    while frontier:
        parent = frontier.pop()
        for child, child_parent in table.items():
            if child_parent == parent and child not in found:
                found.append(child)
                frontier.append(child)
    return found


def kill_all(pids: list[int]) -> None:
    """SIGKILL each process; one that is already gone is no error."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
