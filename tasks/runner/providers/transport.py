"""The HTTP transport under the SDKs: connections pinned to the egress-checked address, and abortable.

Pinning: the base_url's host is resolved once and checked by the egress policy
(``EgressPolicy.connect_address``); every request then goes to THAT address, never re-resolved, so
a name cannot answer a public address for the check and a private one for the connection (DNS
rebinding). The URL's host is replaced by the address while the ``Host`` header keeps the name,
and TLS is negotiated for the name (httpcore's ``sni_hostname`` request extension), so the
certificate is still checked against the name.

Aborting: the SDK call is blocking, so the caller runs it on a helper thread; ``abort()`` shuts
down the sockets this transport opened (found through httpcore's ``trace`` extension), which
makes a read blocked in that thread fail at once instead of lingering until its timeout.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import weakref

import httpx2

from tasks.runner.egress import EgressPolicy, EgressRefused

# The trace events whose return value is a new network stream (TCP, then TLS over it).
_NEW_STREAM_EVENTS = ("connection.connect_tcp.complete", "connection.start_tls.complete")


class ProviderTransport(httpx2.HTTPTransport):
    """httpx's transport, plus pinning to the checked address (when ``policy`` is given) and ``abort()``."""

    def __init__(self, *, host: str, port: int, policy: EgressPolicy | None, **kwargs):
        super().__init__(**kwargs)
        self.host, self.port, self.policy = host.lower(), port, policy
        self.address: str | None = None  # the checked address, once pinned
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._aborted = False

    def pin(self) -> None:
        """Resolve and check the host once (EgressRefused, or OSError when it does not resolve)."""
        if self.policy is not None and self.address is None:
            self.address = self.policy.connect_address(self.host, self.port)

    def reset(self) -> None:
        """A new call may use the transport again after an ``abort()``."""
        with self._lock:
            self._aborted = False

    def abort(self) -> None:
        """Shut down every connection this transport opened, so a blocked read fails now."""
        with self._lock:
            self._aborted = True
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):  # already closed, or detached when TLS wrapped it
                sock.shutdown(socket.SHUT_RDWR)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._aborted:
            raise httpx2.ConnectError("the call was abandoned", request=request)
        if self.policy is not None:
            self._route_to_pinned_address(request)
        request.extensions["trace"] = self._trace
        return super().handle_request(request)

    def _route_to_pinned_address(self, request: httpx2.Request) -> None:
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        if url.host.lower() != self.host or port != self.port:
            # Only the provider's own host was checked; nothing else may be reached through it.
            raise EgressRefused(url.host, "not the provider's checked host")
        self.pin()
        request.url = url.copy_with(host=self.address)  # the Host header, set from the name, stays
        request.extensions["sni_hostname"] = self.host

    def _trace(self, event: str, info: dict) -> None:
        if event not in _NEW_STREAM_EVENTS:
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is None:
            return
        with self._lock:
            self._sockets.add(sock)
            aborted = self._aborted
        if aborted:  # the caller gave up while this connection was being made
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
