"""The egress policy: which addresses a run's browser (and a call made for a user) may connect to.

The policy is enforced where the connection is made, by the egress proxy (egress_proxy.py):
the host name is resolved once, each address is checked, and the connection goes to a checked
address, so a name cannot resolve to a public address for the check and to a private one for the
connection (DNS rebinding). ``url_refusal`` is the friendly early check made when a run is
queued; it resolves the name too, but only to give a clear 400 sooner.

Refused unless allowed: every address that is not publicly routable (loopback, RFC 1918,
link-local, CGNAT, unique-local, unspecified, documentation and other special-purpose ranges),
multicast, the cloud metadata addresses, and IPv6 forms that embed one of these (IPv4-mapped,
NAT64, 6to4). ``EGRESS_ALLOWLIST`` entries (host names, addresses, CIDR blocks, each with an
optional ``:port``) open some of them.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

BLOCKED = "blocked by the egress policy"
_HOST_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?")

# Named for the message; they are also link-local, CGNAT or not global, and refused as such.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "192.0.0.192", "fd00:ec2::254")
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")


def address_kind(address: IPAddress) -> str | None:
    """Why ``address`` is refused by default ("loopback", "private"...), or None for a public address."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        kind = address_kind(embedded)
        return f"{kind} (in an IPv6 form)" if kind else None
    checks = (
        ("cloud metadata", address in METADATA_ADDRESSES),
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("CGNAT", address.version == 4 and address in CGNAT),
        ("unique-local", address.version == 6 and address in UNIQUE_LOCAL),
        ("private", address.is_private),
        ("reserved", not address.is_global),
    )
    return next((kind for kind, refused in checks if refused), None)


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, NAT64, 6to4), if any."""
    if address.version == 4:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


# HOSTS AS THE BROWSER READS THEM
# ------------------------------------------------------------------------------


def parse_host(host: str) -> IPAddress | str:
    """A URL's host as Chromium reads it: an address, or a lower-case name without a trailing dot.

    Follows the WHATWG URL host parser, so ``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``
    and ``%31%32%37.0.0.1`` are all 127.0.0.1, and ``[::ffff:7f00:1]`` is an IPv6 address.
    """
    host = unquote(host).strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return host
    return _whatwg_ipv4(host) or host.rstrip(".")


def _whatwg_ipv4(host: str) -> ipaddress.IPv4Address | None:
    parts = host.split(".")
    if parts and parts[-1] == "" and len(parts) > 1:
        parts.pop()  # one trailing dot is allowed
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if any(number is None for number in numbers):
        return None
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for i, number in enumerate(leading):
        value += number * 256 ** (3 - i)
    return ipaddress.IPv4Address(value)


def _ipv4_number(part: str) -> int | None:
    """One dotted part: decimal, 0x-hex or 0-octal, as WHATWG (and so Chromium) reads it."""
    base = 10
    if part[:2] in ("0x", "0X"):
        part, base = part[2:], 16
    elif len(part) > 1 and part.startswith("0"):
        part, base = part[1:], 8
    if part == "":
        return 0
    try:
        return int(part, base) if part.isalnum() else None
    except ValueError:
        return None


# THE ALLOWLIST
# ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowRule:
    """One EGRESS_ALLOWLIST entry: a host name or a network, and optionally one port."""

    name: str | None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    port: int | None

    def allows(self, *, host: IPAddress | str, address: IPAddress, port: int) -> bool:
        if self.port is not None and port != self.port:
            return False
        if self.name is not None:
            return host == self.name
        candidates = [address, _embedded_ipv4(address)]
        return any(c is not None and c.version == self.network.version and c in self.network for c in candidates)


def parse_allowlist(entries: Iterable[str]) -> tuple[AllowRule, ...]:
    """EGRESS_ALLOWLIST's entries as rules; ValueError names an entry that is not a host, address or network."""
    return tuple(_parse_rule(entry.strip()) for entry in entries if entry.strip())


def _parse_rule(entry: str) -> AllowRule:
    target, port = _split_port(entry)
    try:
        network = ipaddress.ip_network(target, strict=False)
    except ValueError:
        network = None
    if network is not None:
        return AllowRule(name=None, network=network, port=port)
    host = parse_host(target)
    if not isinstance(host, str):
        return AllowRule(name=None, network=ipaddress.ip_network(host), port=port)
    if not _HOST_NAME.fullmatch(host):
        raise ValueError(f"EGRESS_ALLOWLIST: {entry!r} is not a host name, IP address or CIDR block.")
    return AllowRule(name=host, network=None, port=port)


def _split_port(entry: str) -> tuple[str, int | None]:
    """``host:port``, ``[v6]:port``, ``10.0.0.0/8:8080``; a bare IPv6 address or network has no port."""
    if entry.startswith("["):
        target, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":") if rest.startswith(":") else None
    elif entry.count(":") == 1:
        target, port = entry.split(":")
    else:
        target, port = entry, None
    if port is None:
        return target, None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"EGRESS_ALLOWLIST: {entry!r} has an invalid port.")
    return target, int(port)


# THE POLICY
# ------------------------------------------------------------------------------


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (the first one is the preferred one)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


class EgressRefused(Exception):
    """A connection the policy does not allow: ``host`` as asked for, ``problem`` why (with the address)."""

    def __init__(self, host: str, problem: str):
        self.host, self.problem = host, problem
        super().__init__(f"{BLOCKED}: {host} ({problem})")


@dataclass(frozen=True)
class EgressPolicy:
    """Which connections are allowed: public addresses, plus what the allowlist opens."""

    allowlist: tuple[AllowRule, ...] = ()
    resolver: Resolver = system_resolver

    @classmethod
    def from_entries(cls, entries: Iterable[str], **kwargs) -> EgressPolicy:
        return cls(allowlist=parse_allowlist(entries), **kwargs)

    def refusal(self, *, host: IPAddress | str, address: IPAddress, port: int) -> str | None:
        """Why connecting to ``address`` (for ``host``) is refused, or None when it is allowed."""
        kind = address_kind(address)
        if kind is None or any(rule.allows(host=host, address=address, port=port) for rule in self.allowlist):
            return None
        return f"{kind} address {address}"

    def connect_address(self, host: str, port: int) -> str:
        """The address to connect to for ``host:port``: resolved once and checked; EgressRefused otherwise.

        A name is refused only when none of its addresses is allowed; the connection then goes to
        the first allowed one, never to an address that was not checked.
        """
        parsed = parse_host(host)
        if not isinstance(parsed, str):
            if problem := self.refusal(host=parsed, address=parsed, port=port):
                raise EgressRefused(host, problem)
            return str(parsed)
        try:
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in self.resolver(parsed, port)]
        except (OSError, UnicodeError) as exc:
            raise OSError(f"could not resolve {host}: {exc}") from exc
        problems = []
        for address in addresses:
            problem = self.refusal(host=parsed, address=address, port=port)
            if problem is None:
                return str(address)
            problems.append(problem)
        raise EgressRefused(host, f"resolves to {', '.join(problems) or 'no address'}")

    def url_refusal(self, url: str) -> str | None:
        """The early check for a URL a run will open: why it is refused, or None (also when its name does not
        resolve now: the connection check decides then)."""
        parts = urlsplit(url.strip().replace("\\", "/"))
        if not parts.hostname:
            return None
        try:
            port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
            self.connect_address(parts.hostname, port)
        except EgressRefused as refused:
            return f"The browser may not connect to {refused.host}: {refused.problem} (the egress policy)."
        except (OSError, ValueError):
            return None
        return None
