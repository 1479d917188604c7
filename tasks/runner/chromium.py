"""Which Chromium to start and with which flags; shared by the driver and the replay script."""

from __future__ import annotations

import os
import shutil

SYSTEM_CHROMIUM = "/usr/bin/chromium"

# --no-sandbox: the worker runs as root in a container, where Chromium's own sandbox cannot start.
# The background-networking family: without them Chromium's own outbound connections (updates,
# field trials, sync) are refused in a locked-down network and slow every launch down.
LAUNCH_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)


def chromium_executable() -> str | None:
    """CHROMIUM_PATH, else the system Chromium, else None (Playwright's own downloaded build)."""
    configured = os.environ.get("CHROMIUM_PATH", "").strip()
    if configured:
        return configured
    if os.path.exists(SYSTEM_CHROMIUM):
        return SYSTEM_CHROMIUM
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch_args(width: int, height: int) -> list[str]:
    return [*LAUNCH_ARGS, f"--window-size={width},{height}"]


def egress_args(proxy_url: str) -> list[str]:
    """Every connection through the egress proxy (egress_proxy.py), none around it.

    Loopback is not bypassed (Chromium bypasses it by default); no name is resolved by Chromium
    itself, so nothing connects without the proxy's check; WebRTC may use only proxied UDP, that
    is none, since the proxy speaks HTTP.
    """
    return [
        f"--proxy-server={proxy_url}",
        "--proxy-bypass-list=<-loopback>",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",  # the proxy itself
        "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
        "--webrtc-ip-handling-policy=disable_non_proxied_udp",
    ]
