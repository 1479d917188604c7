"""The forward proxy every connection of a run's browser goes through, enforcing the egress policy.

It is proxy.py (PyPI ``proxy.py``) with one plugin: for each connection (a plain HTTP request or
a CONNECT tunnel, which also carries https and WebSockets) the plugin resolves the host once,
checks the addresses with ``EgressPolicy`` and hands proxy.py the checked address to connect to;
a refused one gets a 403 and is reported on the proxy's standard output, one JSON line each,
which ``EgressProxy`` reads so the runner can say a navigation was blocked.

The proxy runs in a process of its own (``python -m tasks.runner.egress_proxy``): proxy.py
starts its acceptors with multiprocessing, which a Celery prefork child (a daemon process) may
not do, and the process gets no secret from the worker's environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .egress import BLOCKED, EgressPolicy, EgressRefused

BLOCKED_HEADER = "X-Gatehouse-Egress"
START_SECONDS = 15.0
STOP_SECONDS = 3.0
IDLE_TIMEOUT_SECONDS = 60  # proxy.py closes a connection silent for this long (WebSockets included)
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# What the proxy process keeps of the worker's environment: no secret, nothing Django.
KEPT_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR")


def proxy_failure(headers: dict[str, str]) -> str:
    """Why the proxy answered a request itself instead of a server (from the answer's lower-case headers),
    or "" for a server's answer."""
    marker = headers.get(BLOCKED_HEADER.lower())
    if marker == "unresolved":
        return "the host name could not be resolved"
    if marker == "blocked":
        return BLOCKED
    if headers.get("proxy-agent", "").startswith("proxy.py"):
        return "the server could not be reached"  # proxy.py's own 502: the connection failed
    return ""


class EgressProxy:
    """The proxy for one run: started on entry (``url`` is then its address), stopped on exit.

    ``blocked`` collects what the proxy refused, as ``{"host", "port", "reason"}`` dicts, in order.
    """

    def __init__(self, allowlist: tuple[str, ...] = ()):
        self.allowlist = tuple(allowlist)
        self.url = ""
        self.blocked: list[dict] = []
        self._process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> EgressProxy:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        """Start the proxy process and wait until it listens; RuntimeError or OSError when it cannot."""
        with tempfile.TemporaryDirectory(prefix="gatehouse-egress-") as workdir:
            port_file = Path(workdir) / "port"
            self._process = subprocess.Popen(  # noqa: S603 -- our own module; the allowlist is operator config
                [sys.executable, "-m", "tasks.runner.egress_proxy", "--port-file", str(port_file), *self._args()],
                cwd=PROJECT_ROOT,
                env=_proxy_environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopping it stops proxy.py's acceptors too
                text=True,
            )
            self._reader = threading.Thread(target=self._read_reports, name="gatehouse-egress-reports", daemon=True)
            self._reader.start()
            try:
                self.url = f"http://127.0.0.1:{self._wait_for_port(port_file)}"
            except BaseException:
                self.stop()
                raise

    def blocked_hosts(self) -> dict[str, str]:
        """Each refused host (as the browser asked for it) with the reason."""
        return {report["host"]: report["reason"] for report in list(self.blocked)}

    def _args(self) -> list[str]:
        return ["--egress-allowlist", ",".join(self.allowlist)] if self.allowlist else []

    def _wait_for_port(self, port_file: Path) -> int:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the egress proxy exited at start (status {self._process.returncode})")
            with contextlib.suppress(OSError, ValueError):
                return int(port_file.read_text())
            time.sleep(0.02)
        raise RuntimeError(f"the egress proxy did not start within {START_SECONDS:.0f} s")

    def _read_reports(self) -> None:
        for line in self._process.stdout:
            with contextlib.suppress(ValueError):
                self.blocked.append(json.loads(line))

    def stop(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_SECONDS)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # an acceptor left behind by the main process
        if self._reader is not None:
            self._reader.join(STOP_SECONDS)


def _proxy_environment() -> dict[str, str]:
    environment = {name: os.environ[name] for name in KEPT_ENVIRONMENT if name in os.environ}
    # The project first; then what the worker was given (site-packages of a venv the proxy's Python lacks).
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    return environment


# INSIDE THE PROXY PROCESS
# ------------------------------------------------------------------------------


def _report_block(host: str, port: int, reason: str) -> None:
    print(json.dumps({"host": host, "port": port, "reason": reason}), flush=True)  # noqa: T201 -- the report channel


def _plugin_class():
    """The proxy.py plugin, defined only in the proxy process (proxy.py registers flags on import)."""
    from proxy.common.flag import flags
    from proxy.http.exception import HttpRequestRejected
    from proxy.http.proxy import HttpProxyBasePlugin

    flags.add_argument("--egress-allowlist", type=str, default="", help="EGRESS_ALLOWLIST's entries, comma-separated")

    class EgressPlugin(HttpProxyBasePlugin):
        """Resolve once, check, connect to the checked address; one upstream host per client connection."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.policy = EgressPolicy.from_entries(self.flags.egress_allowlist.split(","))
            self.origin: tuple[str, int] | None = None
            self.address: str | None = None

        def before_upstream_connection(self, request):
            host, port = request.host.decode("idna"), request.port
            try:
                self.address = self.policy.connect_address(host, port)
            except EgressRefused as refused:
                _report_block(host, port, str(refused))
                raise HttpRequestRejected(
                    status_code=403,
                    reason=b"Forbidden",
                    headers={BLOCKED_HEADER.encode(): b"blocked"},
                    body=f"Blocked by Gatehouse's egress policy: {host}\n".encode(),
                ) from None
            except OSError:
                raise HttpRequestRejected(
                    status_code=502,
                    reason=b"Unknown host",
                    headers={BLOCKED_HEADER.encode(): b"unresolved"},
                    body=f"The host name {host} could not be resolved.\n".encode(),
                ) from None
            self.origin = (host, port)
            return request

        def resolve_dns(self, host, port):
            return self.address, None  # the address checked above, never a second lookup

        def handle_client_request(self, request):
            # proxy.py sends every request of a kept-alive client connection to the first one's
            # upstream. A request for another host must not go there: closing the connection (no
            # answer) makes Chromium send it again on a new one, which is checked afresh.
            if self.origin is not None and request.host and (request.host.decode("idna"), request.port) != self.origin:
                raise HttpRequestRejected()
            return request

    return EgressPlugin


def _exit_with_parent(parent: int) -> None:
    """Stop when the worker that started the proxy is gone (even killed with SIGKILL)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="gatehouse-egress-parent", daemon=True).start()


def main(argv: list[str]) -> None:
    import proxy

    _exit_with_parent(os.getppid())

    args = [
        *("--hostname", "127.0.0.1", "--port", "0", "--num-acceptors", "1"),
        *("--timeout", str(IDLE_TIMEOUT_SECONDS), "--log-level", "ERROR"),
        *argv,
    ]
    with proxy.Proxy(args, plugins=[_plugin_class()]) as running:
        proxy.sleep_loop(running)  # until SIGTERM


if __name__ == "__main__":
    main(sys.argv[1:])
