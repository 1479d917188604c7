"""Which Chromium to start, with which flags and which environment; shared by the driver and the replay script.

Chromium runs with its own sandbox (a user and PID namespace, seccomp-BPF on every renderer) unless
the operator sets CHROMIUM_NO_SANDBOX=true, which reaches us as ``no_sandbox``. Playwright adds
``--no-sandbox`` by itself unless it is launched with ``chromium_sandbox=True``: the driver and the
replay script always pass that argument, so the flags below are the whole story.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping

SYSTEM_CHROMIUM = "/usr/bin/chromium"
NO_SANDBOX_ARG = "--no-sandbox"

# The background-networking family: without them Chromium's own outbound connections (updates,
# field trials, sync) are refused in a locked-down network and slow every launch down.
LAUNCH_ARGS = (
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)

# What Chromium inherits from the worker, by name: enough to start, find fonts and (headed) show a
# window. Everything else stays out: the worker's environment holds SECRET_KEY, DATABASE_URL and
# storage credentials, and an exploited renderer reads its own /proc/self/environ.
ENVIRONMENT = ("PATH", "HOME", "TMPDIR", "LANG", "LANGUAGE", "TZ", "FONTCONFIG_FILE", "FONTCONFIG_PATH")
ENVIRONMENT_PREFIXES = ("LC_",)
HEADED_ENVIRONMENT = ("DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "XDG_RUNTIME_DIR")

# What Chromium (and Playwright's rewrite of its log) says when its sandbox cannot start.
_SANDBOX_FAILURES = ("Chromium sandboxing failed", "No usable sandbox", "crbug.com/638180", "crbug.com/357670")


def chromium_executable() -> str | None:
    """CHROMIUM_PATH, else the system Chromium, else None (Playwright's own downloaded build)."""
    configured = os.environ.get("CHROMIUM_PATH", "").strip()
    if configured:
        return configured
    if os.path.exists(SYSTEM_CHROMIUM):
        return SYSTEM_CHROMIUM
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch_args(width: int, height: int, *, no_sandbox: bool = False) -> list[str]:
    """Chromium's command-line flags; ``no_sandbox`` only when the operator asked for it (CHROMIUM_NO_SANDBOX)."""
    args = [*LAUNCH_ARGS, f"--window-size={width},{height}"]
    if no_sandbox:
        args.append(NO_SANDBOX_ARG)
    return args


def browser_environment(*, headless: bool, source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment Chromium is launched with: the allowed names of ``source`` (the worker's environment)."""
    source = os.environ if source is None else source
    names = ENVIRONMENT if headless else ENVIRONMENT + HEADED_ENVIRONMENT
    environment = {name: source[name] for name in names if source.get(name)}
    environment.update({name: value for name, value in source.items() if name.startswith(ENVIRONMENT_PREFIXES)})
    environment.setdefault("PATH", os.defpath)
    environment.setdefault("HOME", tempfile.gettempdir())
    environment.setdefault("TMPDIR", tempfile.gettempdir())
    return environment


def sandbox_failure_message(launch_error: str, *, euid: int) -> str | None:
    """The run's error when Chromium did not start because its sandbox could not, else None."""
    if not any(marker in launch_error for marker in _SANDBOX_FAILURES):
        return None
    if euid == 0:
        why = "this worker runs as root, and Chromium does not start its sandbox as root"
    else:
        why = (
            "this system does not let it create user namespaces (kernel.unprivileged_userns_clone=0, "
            "or a container's seccomp profile: see docker/chromium-seccomp.json)"
        )
    return (
        f"Could not start Chromium: its sandbox cannot start ({why}). Run the worker as a non-root user, "
        "or set CHROMIUM_NO_SANDBOX=true to run Chromium without its sandbox (not recommended: a page that "
        "exploits the browser then runs with the worker's rights)."
    )


def sandbox_warning(*, no_sandbox: bool, euid: int) -> str | None:
    """What a worker logs at start about Chromium's sandbox, or None when all is well."""
    if no_sandbox:
        return (
            "CHROMIUM_NO_SANDBOX=true: Chromium runs without its sandbox, so a page that exploits the browser "
            "runs with this worker's rights. Run the worker as a non-root user and unset CHROMIUM_NO_SANDBOX."
        )
    if euid == 0:
        return (
            "This worker runs as root: Chromium's sandbox cannot start as root, so every browser run will fail. "
            "Run the worker as a non-root user, or set CHROMIUM_NO_SANDBOX=true (not recommended)."
        )
    return None


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
