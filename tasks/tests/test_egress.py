"""The egress policy: address rules, the allowlist, the early check at initiate, the proxy in a real Chromium."""

import ipaddress
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from tasks.models import Task
from tasks.runner import EgressPolicy, run_browser
from tasks.runner.egress import EgressRefused, address_kind, parse_allowlist, parse_host
from tasks.runner.egress_proxy import EgressProxy
from tasks.tests.factories import browser_options, create_task, statuses

LOOPBACK_SPELLINGS = [
    "2130706433",  # decimal
    "0177.0.0.1",  # octal
    "0x7f.1",  # hex, short
    "127.1",  # short
    "127.0.0.1.",  # trailing dot
    "%31%32%37.0.0.1",  # percent-encoded
    "[::ffff:127.0.0.1]",  # IPv4-mapped
    "[::ffff:7f00:1]",
    "[64:ff9b::7f00:1]",  # NAT64
    "[::1]",
]


# ADDRESSES AND THE ALLOWLIST
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_every_spelling_of_loopback_is_read_as_chromium_reads_it(host):
    parsed = parse_host(host.strip("[]"))
    assert not isinstance(parsed, str)
    assert address_kind(parsed).startswith("loopback")


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "CGNAT"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fc00::1", "unique-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 -- an address checked, not bound
        ("::", "unspecified"),
        ("::ffff:10.0.0.1", "private (in an IPv6 form)"),
        ("2002:a00:1::", "private (in an IPv6 form)"),  # 6to4 of 10.0.0.1
        ("192.0.2.1", "private"),  # documentation
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_addresses_are_refused_unless_public(address, kind):
    assert address_kind(ipaddress.ip_address(address)) == kind


def test_the_allowlist_opens_hosts_addresses_and_networks_with_optional_ports():
    policy = EgressPolicy.from_entries(["staging.internal", "10.0.0.0/8:8080", "127.0.0.3", "[::1]:9000", " "])
    loopback3 = ipaddress.ip_address("127.0.0.3")
    assert policy.refusal(host="staging.internal", address=ipaddress.ip_address("10.9.9.9"), port=443) is None
    assert policy.refusal(host="10.1.1.1", address=ipaddress.ip_address("10.1.1.1"), port=8080) is None
    assert policy.refusal(host="10.1.1.1", address=ipaddress.ip_address("10.1.1.1"), port=80)
    assert policy.refusal(host="127.0.0.3", address=loopback3, port=1) is None
    assert policy.refusal(host="::ffff:127.0.0.3", address=ipaddress.ip_address("::ffff:127.0.0.3"), port=1) is None
    assert policy.refusal(host="::1", address=ipaddress.ip_address("::1"), port=9000) is None
    assert policy.refusal(host="::1", address=ipaddress.ip_address("::1"), port=9001) == "loopback address ::1"
    assert policy.refusal(host="other.internal", address=ipaddress.ip_address("10.9.9.9"), port=443)


@pytest.mark.parametrize("entry", ["http://x", "10.0.0.0/33", "host:99999", "host:port", "a b"])
def test_a_bad_allowlist_entry_is_named(entry):
    with pytest.raises(ValueError, match="EGRESS_ALLOWLIST"):
        parse_allowlist([entry])


def test_a_bad_allowlist_fails_the_system_check(settings):
    settings.EGRESS_ALLOWLIST = ["10.0.0.0/33"]
    with pytest.raises(SystemCheckError, match="tasks.E001"):
        call_command("check")


def test_a_name_is_connected_to_an_address_that_was_checked_never_another():
    answers = {"mixed.example": ["10.0.0.5", "93.184.216.34"], "inside.example": ["10.0.0.5", "::1"]}
    policy = EgressPolicy(resolver=lambda host, port: answers[host])
    assert policy.connect_address("mixed.example", 443) == "93.184.216.34"
    with pytest.raises(EgressRefused) as refused:
        policy.connect_address("inside.example", 443)
    assert str(refused.value) == (
        "blocked by the egress policy: inside.example (resolves to private address 10.0.0.5, loopback address ::1)"
    )
    with pytest.raises(EgressRefused):
        policy.connect_address("2130706433", 80)


# THE EARLY CHECK AT INITIATE
# ------------------------------------------------------------------------------


@pytest.fixture
def no_allowlist(settings):
    settings.EGRESS_ALLOWLIST = []


def _initiate(client, task_id, payload):
    return client.patch(f"/api/v1/tasks/{task_id}/initiate", {"instruction": "check", **payload}, format="json")


@pytest.mark.django_db
@pytest.mark.parametrize("host", [*LOOPBACK_SPELLINGS, "localhost", "169.254.169.254", "[fd00:ec2::254]", "10.0.0.1"])
def test_initiate_refuses_a_start_url_on_a_refused_address_naming_the_field(auth_client, no_allowlist, host):
    task_id = create_task(auth_client)
    response = _initiate(auth_client, task_id, {"start_url": f"http://{host}:8000/admin/"})
    assert response.status_code == 400
    assert list(response.json()) == ["start_url"]
    assert "egress policy" in response.json()["start_url"][0]
    assert Task.objects.get(pk=task_id).status == "created"


@pytest.mark.django_db
def test_initiate_names_each_goto_step_that_is_refused(auth_client, no_allowlist):
    task_id = create_task(auth_client)
    steps = [
        {"action": "goto", "url": "http://93.184.216.34/"},
        {"action": "goto", "url": "http://0177.0.0.1/"},
        {"action": "expect_text", "text": "x"},
        {"action": "goto", "url": "https://[::ffff:169.254.169.254]/latest/meta-data/"},
    ]
    response = _initiate(auth_client, task_id, {"steps": steps})
    assert response.status_code == 400
    detail = response.json()["steps"]
    assert sorted(detail) == ["1", "3"]
    assert detail["1"][0].startswith('"url": The browser may not connect to 0177.0.0.1: loopback address 127.0.0.1')
    assert "cloud metadata" in detail["3"][0]


@pytest.mark.django_db
def test_the_allowlist_opens_one_address_at_initiate(auth_client, settings):
    settings.EGRESS_ALLOWLIST = ["127.0.0.3:8080"]
    task_id = create_task(auth_client)
    assert _initiate(auth_client, task_id, {"start_url": "http://127.0.0.3:8080/"}).status_code == 202
    other = create_task(auth_client, "other port")
    assert _initiate(auth_client, other, {"start_url": "http://127.0.0.3:8081/"}).status_code == 400


# THE PROXY, IN A REAL CHROMIUM
# ------------------------------------------------------------------------------


class _Server:
    """An HTTP server on one address with a request log; ``pages`` maps a path to (status, headers, body)."""

    def __init__(self, address: str, pages: dict | None = None):
        outer = self
        self.requests: list[str] = []
        self.pages = pages or {}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 -- BaseHTTPRequestHandler's naming
                outer.requests.append(f"{self.headers.get('Host')}{self.path}")
                status, headers, body = outer.pages.get(self.path.split("?")[0], (200, {}, b"SECRET INSIDE"))
                self.send_response(status)
                for name, value in {"Content-Type": "text/html", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):  # noqa: A002
                pass

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.origin = f"http://{address}:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def refused_server():
    """A server on 127.0.0.3, which the runs below do not allow: it must never see a request."""
    server = _Server("127.0.0.3")
    yield server
    server.close()


@pytest.fixture
def attacking_site(refused_server):
    """An allowed site (127.0.0.1) whose pages reach for the refused server every way a page can."""
    refused = refused_server.origin
    ws = refused.replace("http://", "ws://")
    page = f"""<!doctype html><title>Attack</title><h1>Attack page</h1>
<img src="{refused}/image.png" onerror="document.body.dataset.img = 'failed'">
<script>
  fetch("{refused}/fetch").then(() => {{ document.body.dataset.fetch = "answered"; }},
                                 () => {{ document.body.dataset.fetch = "failed"; }});
  const socket = new WebSocket("{ws}/socket");
  socket.onerror = () => {{ document.body.dataset.ws = "failed"; }};
  new Image().src = "http://localhost:{refused_server.server.server_port}/by-name";
</script>"""
    pages = {
        "/": (200, {}, page.encode()),
        "/redirect": (302, {"Location": f"{refused}/secret"}, b""),
    }
    site = _Server("127.0.0.1", pages)
    yield site
    site.close()


def _site_only(site) -> dict:
    """Browser options allowing exactly the attacking site's address and port, nothing else on loopback."""
    return browser_options(egress_allowlist=(f"127.0.0.1:{site.server.server_port}",))


@pytest.mark.browser
def test_subresources_fetch_and_websockets_to_a_refused_address_never_leave_the_proxy(attacking_site, refused_server):
    report = run_browser(
        steps=[
            {"action": "goto", "url": f"{attacking_site.origin}/"},
            {"action": "wait_for", "selector": "body[data-img='failed'][data-fetch='failed'][data-ws='failed']"},
        ],
        options=_site_only(attacking_site),
    )
    assert report.error == ""
    assert statuses(report) == ["ok", "ok"]
    assert refused_server.requests == []
    assert attacking_site.requests[0] == f"127.0.0.1:{attacking_site.server.server_port}/"
    assert all(not path.endswith(("/fetch", "/socket", "/by-name")) for path in attacking_site.requests)


@pytest.mark.browser
def test_a_redirect_to_a_refused_address_is_blocked_and_ends_the_run(attacking_site, refused_server):
    report = run_browser(
        steps=[
            {"action": "goto", "url": f"{attacking_site.origin}/redirect"},
            {"action": "expect_text", "text": "SECRET"},
        ],
        options=_site_only(attacking_site),
    )
    assert statuses(report) == ["failed", "skipped"]
    assert report.error == "Step 1 (goto) failed: blocked by the egress policy: 127.0.0.3 (loopback address 127.0.0.3)"
    assert refused_server.requests == []


@pytest.mark.browser
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_name_resolving_to_loopback_is_blocked_when_the_browser_connects(refused_server, scheme):
    # localhost resolves to 127.0.0.1 in the proxy's resolver (/etc/hosts); the run allows 127.0.0.1
    # on another port only, so the name's address is refused, whatever Chromium makes of the name.
    server = _Server("127.0.0.1")
    try:
        report = run_browser(
            steps=[{"action": "goto", "url": f"{scheme}://localhost:{server.server.server_port}/"}],
            options=browser_options(egress_allowlist=("127.0.0.1:1",)),
        )
    finally:
        server.close()
    assert report.history[0].error == "blocked by the egress policy: localhost (resolves to loopback address 127.0.0.1)"
    assert server.requests == []


@pytest.mark.browser
def test_the_allowlist_opens_the_refused_address(attacking_site, refused_server):
    """The control: the same redirect reaches the server once its address is allowed."""
    options = browser_options(
        egress_allowlist=(f"127.0.0.1:{attacking_site.server.server_port}", "127.0.0.3"),
    )
    report = run_browser(
        steps=[
            {"action": "goto", "url": f"{attacking_site.origin}/redirect"},
            {"action": "expect_text", "text": "SECRET"},
        ],
        options=options,
    )
    assert report.error == ""
    assert report.expectation_met is True
    assert refused_server.requests[0] == f"127.0.0.3:{refused_server.server.server_port}/secret"


def test_a_kept_alive_connection_cannot_carry_a_request_to_another_host(refused_server):
    allowed = _Server("127.0.0.1")
    policy_allows = (f"127.0.0.1:{allowed.server.server_port}",)
    try:
        with EgressProxy(policy_allows) as proxy:
            port = int(proxy.url.rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
                first = f"GET {allowed.origin}/one HTTP/1.1\r\nHost: 127.0.0.1:{allowed.server.server_port}\r\n\r\n"
                connection.sendall(first.encode())
                assert b"SECRET INSIDE" in _read_response(connection)
                second = f"GET {refused_server.origin}/two HTTP/1.1\r\nHost: 127.0.0.3\r\n\r\n"
                connection.sendall(second.encode())
                assert _read_response(connection) == b""  # closed unanswered: the browser retries on a new one
    finally:
        allowed.close()
    assert allowed.requests == [f"127.0.0.1:{allowed.server.server_port}/one"]
    assert refused_server.requests == []


def _read_response(connection: socket.socket) -> bytes:
    data = b""
    while b"SECRET INSIDE" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    return data
