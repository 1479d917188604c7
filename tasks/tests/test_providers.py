"""The provider clients against the local language-model server (tasks/tests/llm_server.py).

Each case runs through the official SDK (openai, anthropic) over real HTTP, for every provider
where it makes sense; the request bodies the server recorded show what the provider would see.
"""

import base64
import logging
import os
import subprocess
import sys
import threading
import time

import pytest

from tasks.runner.egress import EgressPolicy
from tasks.runner.providers import (
    AssistantTurn,
    ModelReply,
    ProviderBlocked,
    ProviderCancelled,
    ProviderConfig,
    ProviderError,
    ProviderRejectedKey,
    ProviderUnavailable,
    ToolCall,
    ToolResult,
    ToolResultTurn,
    ToolSpec,
    UserTurn,
    open_client,
)
from tasks.tests.llm_server import malformed, slow, status, text_only, tool

KEY = "sk-test-Zq81rT0pKe7wXy2Vb5Nm"
ALL = ["openai", "openai_compatible", "anthropic"]
FILL = ToolSpec(
    name="fill",
    description="Type text into a field.",
    parameters={
        "type": "object",
        "properties": {"selector": {"type": "string"}, "text": {"type": "string"}},
        "required": ["selector", "text"],
    },
)
DONE = ToolSpec(name="done", description="Finish.", parameters={"type": "object", "properties": {}})
JPEG = b"\xff\xd8\xff\xe0 a tiny jpeg"


def config_for(server, provider, **overrides):
    values = {
        "provider": provider,
        "model": "test-model",
        "api_key": KEY,
        "base_url": server.base_url(provider),
        "base_url_trusted": True,  # the local server is loopback: egress is tested on its own below
        "call_timeout_s": 5.0,
    }
    return ProviderConfig(**(values | overrides))


def complete(client, *, turns=None, tools=(FILL, DONE), seconds=10.0, cancel_event=None, system="You drive a browser."):
    return client.complete(
        system=system,
        turns=turns or [UserTurn("Search for socks")],
        tools=tools,
        deadline=time.monotonic() + seconds,
        cancel_event=cancel_event or threading.Event(),
    )


@pytest.fixture
def llm(llm_server):
    llm_server.expected_key = KEY
    clients = []

    def open_for(provider, **overrides):
        client = open_client(config_for(llm_server, provider, **overrides))
        clients.append(client)
        return client

    llm_server.open = open_for
    yield llm_server
    for client in clients:
        client.close()


def _no_call_thread_left():
    deadline = time.monotonic() + 1
    while any(t.name == "model-call" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not any(t.name == "model-call" for t in threading.enumerate())


# ANSWERS
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ALL)
def test_a_tool_call_is_parsed_with_its_arguments_reason_and_usage(llm, provider):
    llm.script([tool("fill", {"selector": "#q", "text": "socks"}, reason="Type the query", usage=(321, 17))])

    reply = complete(llm.open(provider))

    assert reply.text == "Type the query"
    assert reply.input_tokens == 321 and reply.output_tokens == 17
    [call] = reply.tool_calls
    assert call.name == "fill"
    assert call.arguments == {"selector": "#q", "text": "socks"}
    assert call.id
    assert len(llm.requests) == 1


@pytest.mark.parametrize("provider", ALL)
def test_malformed_arguments_give_none_and_keep_the_raw_text(llm, provider):
    llm.script([malformed('{"selector": "#q", ')])

    [call] = complete(llm.open(provider)).tool_calls

    assert call.arguments is None
    assert call.raw_arguments == '{"selector": "#q", '


@pytest.mark.parametrize("provider", ALL)
def test_a_text_only_answer_has_no_tool_calls(llm, provider):
    llm.script([text_only("I would rather chat.")])

    reply = complete(llm.open(provider))

    assert reply.tool_calls == () and reply.text == "I would rather chat."


# THE REQUEST AS THE PROVIDER SEES IT
# ------------------------------------------------------------------------------


def _conversation():
    first = ModelReply(
        text="Typing first",
        tool_calls=(
            ToolCall(
                id="call_1",
                name="fill",
                arguments={"selector": "#q", "text": "socks"},
                raw_arguments='{"selector":"#q","text":"socks"}',
            ),
            ToolCall(id="call_2", name="fill", arguments=None, raw_arguments="not json"),
        ),
        input_tokens=10,
        output_tokens=5,
    )
    return [
        UserTurn("Search for socks", image_jpeg=JPEG),
        AssistantTurn(first),
        ToolResultTurn(
            results=(ToolResult("call_1", "filled #q"), ToolResult("call_2", "arguments are not JSON", is_error=True)),
            text="Page: Results for socks",
            image_jpeg=JPEG,
        ),
    ]


@pytest.mark.parametrize("provider", ["openai", "openai_compatible"])
def test_openai_messages_tools_and_tool_choice(llm, provider):
    llm.script([tool("done", {})])

    complete(llm.open(provider), turns=_conversation())

    body = llm.requests[0].body
    assert llm.requests[0].path == "/v1/chat/completions"
    assert body["model"] == "test-model"
    assert body["tool_choice"] == "required"
    assert [t["function"]["name"] for t in body["tools"]] == ["fill", "done"]
    assert body["tools"][0] == {
        "type": "function",
        "function": {"name": "fill", "description": FILL.description, "parameters": FILL.parameters},
    }
    limit = "max_completion_tokens" if provider == "openai" else "max_tokens"
    assert body[limit] == 1024 and body["temperature"] == 0.0
    data_url = "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()
    system, user, assistant, tool_1, tool_2, observation = body["messages"]
    assert system == {"role": "system", "content": "You drive a browser."}
    assert user == {
        "role": "user",
        "content": [
            {"type": "text", "text": "Search for socks"},
            {"type": "image_url", "image_url": {"url": data_url}},
        ],
    }
    assert assistant["role"] == "assistant" and assistant["content"] == "Typing first"
    assert assistant["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "fill", "arguments": '{"selector":"#q","text":"socks"}'},
        },
        {"id": "call_2", "type": "function", "function": {"name": "fill", "arguments": "not json"}},
    ]
    assert tool_1 == {"role": "tool", "tool_call_id": "call_1", "content": "filled #q"}
    assert tool_2 == {"role": "tool", "tool_call_id": "call_2", "content": "error: arguments are not JSON"}
    assert observation["role"] == "user"
    assert observation["content"][0] == {"type": "text", "text": "Page: Results for socks"}
    assert observation["content"][1]["image_url"]["url"] == data_url
    assert llm.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_anthropic_blocks_tools_and_tool_choice(llm):
    llm.script([tool("done", {})])
    turns = [*_conversation(), UserTurn("Also: hurry")]  # two user turns in a row: merged

    complete(llm.open("anthropic"), turns=turns)

    body = llm.requests[0].body
    assert llm.requests[0].path == "/v1/messages"
    assert body["system"] == "You drive a browser."
    assert body["tool_choice"] == {"type": "any"}
    assert body["max_tokens"] == 1024
    assert body["tools"][0] == {"name": "fill", "description": FILL.description, "input_schema": FILL.parameters}
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/jpeg", "data": base64.b64encode(JPEG).decode()},
    }
    user, assistant, results = body["messages"]  # the roles alternate
    assert user == {"role": "user", "content": [{"type": "text", "text": "Search for socks"}, image]}
    assert assistant == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Typing first"},
            {"type": "tool_use", "id": "call_1", "name": "fill", "input": {"selector": "#q", "text": "socks"}},
            {"type": "tool_use", "id": "call_2", "name": "fill", "input": {}},
        ],
    }
    assert results["role"] == "user"
    assert results["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "filled #q", "is_error": False},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "arguments are not JSON", "is_error": True},
        {"type": "text", "text": "Page: Results for socks"},
        image,
        {"type": "text", "text": "Also: hurry"},
    ]


@pytest.mark.parametrize("provider", ALL)
def test_no_tools_offered_means_no_tool_choice(llm, provider):
    llm.script([text_only("hi")])

    complete(llm.open(provider), tools=(), system="")

    body = llm.requests[0].body
    assert "tools" not in body and "tool_choice" not in body and "system" not in body
    assert body["messages"][0]["role"] == "user"


def test_a_server_refusing_tool_choice_required_is_asked_again_without_it(llm):
    llm.script([status(400, message="Invalid value for 'tool_choice': 'required' is not supported."), tool("done", {})])

    reply = complete(llm.open("openai_compatible"))

    assert reply.tool_calls[0].name == "done"
    first, second = (r.body for r in llm.requests)
    assert first["tool_choice"] == "required" and "tool_choice" not in second


def test_openai_compatible_without_a_key_sends_a_placeholder(llm):
    llm.expected_key = None
    llm.script([tool("done", {})])

    complete(llm.open("openai_compatible", api_key=""))

    assert llm.requests[0].headers["authorization"] == "Bearer no-key"


def test_openai_without_a_key_is_refused_before_any_call(llm):
    with pytest.raises(ProviderError, match="no API key"):
        open_client(config_for(llm, "openai", api_key=""))


# ERRORS AND RETRIES
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ALL)
@pytest.mark.parametrize("code", [401, 403])
def test_a_rejected_key_fails_at_once(llm, provider, code):
    llm.script([status(code), tool("done", {})])

    with pytest.raises(ProviderRejectedKey) as caught:
        complete(llm.open(provider))

    assert str(caught.value) == f"provider rejected the key (HTTP {code})"
    assert len(llm.requests) == 1


@pytest.mark.parametrize("provider", ALL)
def test_a_wrong_key_is_rejected_by_the_server(llm, provider):
    with pytest.raises(ProviderRejectedKey, match=r"^provider rejected the key \(HTTP 401\)$"):
        complete(llm.open(provider, api_key="sk-wrong-key-0000000000"))


@pytest.mark.parametrize("provider", ALL)
def test_429_with_retry_after_then_success(llm, provider):
    llm.script([status(429, retry_after=0.3), tool("done", {})])
    started = time.monotonic()

    reply = complete(llm.open(provider))

    assert reply.tool_calls[0].name == "done"
    assert len(llm.requests) == 2
    assert time.monotonic() - started >= 0.3  # Retry-After honoured


@pytest.mark.parametrize("provider", ALL)
def test_500_twice_then_success(llm, provider):
    llm.script([status(500), status(500), tool("done", {})])

    assert complete(llm.open(provider)).tool_calls[0].name == "done"
    assert len(llm.requests) == 3


def test_anthropic_overloaded_529_is_retried(llm):
    llm.script([status(529), tool("done", {})])

    assert complete(llm.open("anthropic")).tool_calls[0].name == "done"
    assert len(llm.requests) == 2


@pytest.mark.parametrize("provider", ALL)
def test_retries_stop_at_the_deadline(llm, provider):
    llm.policy(lambda request: status(500))
    started = time.monotonic()

    with pytest.raises(ProviderUnavailable) as caught:
        complete(llm.open(provider), seconds=1.5)

    elapsed = time.monotonic() - started
    assert elapsed <= 1.5 + 0.3
    assert "HTTP 500" in str(caught.value) and "time limit" in str(caught.value)
    assert len(llm.requests) >= 2


@pytest.mark.parametrize("provider", ALL)
def test_a_retry_after_beyond_the_deadline_gives_up_now(llm, provider):
    llm.script([status(429, retry_after=20)])
    started = time.monotonic()

    with pytest.raises(ProviderUnavailable, match="HTTP 429"):
        complete(llm.open(provider), seconds=3)

    assert time.monotonic() - started < 1


@pytest.mark.parametrize("provider", ALL)
def test_a_call_slower_than_its_timeout_is_retried(llm, provider):
    llm.script([slow(3, then=tool("fill", {"selector": "#late", "text": "x"})), tool("done", {})])
    started = time.monotonic()

    reply = complete(llm.open(provider, call_timeout_s=0.5))

    assert reply.tool_calls[0].name == "done"
    assert time.monotonic() - started < 2.5
    assert len(llm.requests) == 2


@pytest.mark.parametrize("provider", ALL)
def test_a_bad_request_is_unavailable_with_the_providers_message_and_not_retried(llm, provider):
    llm.script([status(400, message="messages: roles must alternate " + "x" * 500)])

    with pytest.raises(ProviderUnavailable) as caught:
        complete(llm.open(provider))

    message = str(caught.value)
    assert message.startswith("the provider refused the request (HTTP 400: messages: roles must alternate")
    assert len(message) < 300  # trimmed
    assert len(llm.requests) == 1


@pytest.mark.parametrize("provider", ALL)
def test_a_refused_connection_is_unavailable_at_the_deadline(llm, provider):
    llm.stop()  # nothing listens on the port any more
    started = time.monotonic()

    with pytest.raises(ProviderUnavailable, match="could not connect to the provider"):
        complete(open_client(config_for(llm, provider)), seconds=1.0)

    assert time.monotonic() - started <= 1.3


def test_no_time_left_means_no_request(llm):
    with pytest.raises(ProviderUnavailable, match="time limit"):
        complete(llm.open("openai"), seconds=-1)
    assert llm.requests == []


# CANCEL
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ALL)
def test_cancel_during_a_slow_answer_returns_within_a_second(llm, provider):
    llm.script([slow(10, then=tool("done", {}))])
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()

    with pytest.raises(ProviderCancelled):
        complete(llm.open(provider, call_timeout_s=30), cancel_event=cancel, seconds=30)

    assert time.monotonic() - started < 1.0
    assert _no_call_thread_left()  # its connection was shut down: the helper thread ended too


@pytest.mark.parametrize("provider", ALL)
def test_cancel_during_a_back_off_wait(llm, provider):
    llm.script([status(429, retry_after=10), tool("done", {})])
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()

    with pytest.raises(ProviderCancelled):
        complete(llm.open(provider), cancel_event=cancel, seconds=30)

    assert time.monotonic() - started < 1.0
    assert len(llm.requests) == 1


def test_a_client_is_usable_after_a_cancelled_call(llm):
    client = llm.open("openai")
    llm.script([slow(10), tool("done", {})])
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    with pytest.raises(ProviderCancelled):
        complete(client, cancel_event=cancel)

    assert complete(client).tool_calls[0].name == "done"


# THE KEY STAYS SECRET
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ALL)
def test_the_key_is_never_in_reprs_errors_or_logs(llm, provider, caplog):
    caplog.set_level(logging.DEBUG)
    config = config_for(llm, provider)
    assert KEY not in repr(config) and KEY not in str(config)
    client = llm.open(provider)
    assert KEY not in repr(client)
    errors = []
    # OpenAI's 401 body quotes part of the key; a 400 that echoes the whole key; a 500 echoing it too.
    llm.script([status(400, message=f"bad key {KEY} in the request"), status(500, message=f"oops {KEY}")])
    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            complete(client, seconds=0.8)
        errors.append(caught.value)
    with pytest.raises(ProviderError) as caught:
        complete(llm.open(provider, api_key=KEY + "-revoked"))
    errors.append(caught.value)

    for error in errors:
        assert KEY not in str(error) and KEY not in repr(error)
        assert KEY[-6:] not in str(error)  # not even the tail OpenAI's 401 shows
    assert KEY not in caplog.text
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("tasks.runner.providers")]
    assert ours and not any("Search for socks" in line or "authorization" in line.lower() for line in ours)


# EGRESS
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ALL)
def test_a_refused_base_url_is_blocked_before_any_request(llm, provider):
    client = llm.open(provider, base_url_trusted=False)  # 127.0.0.1, not allowlisted

    with pytest.raises(ProviderBlocked) as caught:
        complete(client)

    assert str(caught.value) == "blocked by the egress policy: 127.0.0.1 (loopback address 127.0.0.1)"
    assert llm.requests == []


@pytest.mark.parametrize(
    "base_url",
    [
        "http://localhost:{port}/v1",
        "http://169.254.169.254/v1",
        "http://[::ffff:127.0.0.1]:{port}/v1",
        "http://2130706433:{port}/v1",
    ],
)
def test_names_and_spellings_of_refused_addresses_are_blocked(llm, base_url):
    client = llm.open("openai_compatible", base_url=base_url.format(port=llm.port), base_url_trusted=False)

    with pytest.raises(ProviderBlocked, match="^blocked by the egress policy: "):
        complete(client, seconds=3)

    assert llm.requests == []


@pytest.mark.parametrize("provider", ALL)
def test_an_allowlisted_name_is_connected_to_the_checked_address_with_its_host_header(llm, provider):
    llm.script([tool("done", {})])
    base = llm.base_url(provider).replace("127.0.0.1", "localhost")
    client = llm.open(provider, base_url=base, base_url_trusted=False, egress_allowlist=("127.0.0.1",))

    complete(client)

    assert llm.requests[0].headers["host"] == f"localhost:{llm.port}"


@pytest.mark.parametrize("provider", ALL)
def test_the_connection_is_pinned_to_the_address_checked_once(llm, provider):
    """A name no DNS knows: the request can only arrive if it went to the checked address, not re-resolved."""
    lookups = []

    def resolver(host, port):
        lookups.append(host)
        return ["127.0.0.1"]

    policy = EgressPolicy.from_entries(["127.0.0.1"], resolver=resolver)
    base = llm.base_url(provider).replace("127.0.0.1", "llm.gatehouse.test")
    config = config_for(llm, provider, base_url=base, base_url_trusted=False)
    client = open_client(config, egress_policy=policy)
    llm.script([tool("done", {}), tool("done", {})])

    complete(client)
    complete(client)
    client.close()

    assert [r.headers["host"] for r in llm.requests] == [f"llm.gatehouse.test:{llm.port}"] * 2
    assert lookups == ["llm.gatehouse.test"]


def test_a_name_resolving_to_a_refused_address_through_a_rebinding_resolver_is_blocked(llm):
    """The check and the connection use one resolution: a name answering private is refused, not retried."""
    policy = EgressPolicy.from_entries([], resolver=lambda host, port: ["10.0.0.7"])
    config = config_for(llm, "openai_compatible", base_url="http://rebind.gatehouse.test/v1", base_url_trusted=False)

    with pytest.raises(ProviderBlocked, match=r"rebind\.gatehouse\.test \(resolves to private address 10\.0\.0\.7\)"):
        complete(open_client(config, egress_policy=policy))


def test_a_trusted_base_url_is_not_checked(llm):
    llm.script([tool("done", {})])

    complete(llm.open("openai_compatible", base_url_trusted=True))

    assert len(llm.requests) == 1


@pytest.mark.parametrize("base_url", ["ftp://example.com/v1", "not a url", "http:///v1"])
def test_a_base_url_that_is_not_http_is_refused_at_open(llm, base_url):
    with pytest.raises(ProviderError, match="base_url"):
        open_client(config_for(llm, "openai_compatible", base_url=base_url))


@pytest.mark.parametrize("provider", ALL)
def test_nothing_is_taken_from_the_sdks_environment_variables(llm, provider, monkeypatch):
    """The operator's OPENAI_*/ANTHROPIC_* settings never reach a provider (least of all a user's server)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-operator-key-000000000000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-operator-key-000000000000")
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "operator-token-0000000000")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-operator")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-operator")
    monkeypatch.setenv("ANTHROPIC_CUSTOM_HEADERS", "X-Operator-Secret: s3cret\nX-Other: 1")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    llm.script([tool("done", {})])

    complete(llm.open(provider))

    [request] = llm.requests
    sent = " ".join(f"{name}: {value}" for name, value in request.headers.items()).lower()
    assert "operator" not in sent and "s3cret" not in sent and "x-other" not in sent
    assert request.headers["authorization"] == f"Bearer {KEY}"


# TLS TO A PINNED ADDRESS
# ------------------------------------------------------------------------------


def _certificate_for(name, tmp_path):
    """A self-signed certificate for ``name`` (its own CA): (cert path, key path)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def tls_server(tmp_path):
    """An HTTPS server on 127.0.0.1 with a certificate for llm.gatehouse.test; records SNI and Host."""
    import ssl
    from http.server import BaseHTTPRequestHandler, HTTPServer

    cert_path, key_path = _certificate_for("llm.gatehouse.test", tmp_path)
    seen = {"sni": [], "host": []}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 -- BaseHTTPRequestHandler's signature
            pass

        def do_GET(self):  # noqa: N802 -- BaseHTTPRequestHandler's naming
            seen["host"].append(self.headers.get("Host"))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    context.sni_callback = lambda sock, name, ctx: seen["sni"].append(name)
    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.server_address[1], cert_path, seen
    server.shutdown()
    server.server_close()


def _pinned_get(host, port, ca_path):
    import ssl

    import httpx2

    from tasks.runner.providers.transport import ProviderTransport

    policy = EgressPolicy.from_entries(["127.0.0.1"], resolver=lambda name, port: ["127.0.0.1"])
    transport = ProviderTransport(
        host=host, port=port, policy=policy, verify=ssl.create_default_context(cafile=ca_path)
    )
    with httpx2.Client(transport=transport, trust_env=False) as client:
        return client.get(f"https://{host}:{port}/v1/models")


def test_tls_to_the_pinned_address_is_for_the_name_sni_and_certificate(tls_server):
    port, ca_path, seen = tls_server

    response = _pinned_get("llm.gatehouse.test", port, ca_path)

    assert response.status_code == 204
    assert seen["sni"] == ["llm.gatehouse.test"]  # not the address
    assert seen["host"] == [f"llm.gatehouse.test:{port}"]


def test_tls_to_the_pinned_address_still_checks_the_certificate_against_the_name(tls_server):
    import httpx2

    port, ca_path, _ = tls_server

    with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED|Hostname mismatch"):
        _pinned_get("other.gatehouse.test", port, ca_path)  # a certificate for another name is refused


def test_a_name_that_does_not_resolve_is_retried_then_unavailable(llm):
    def resolver(host, port):
        raise OSError("Name or service not known")

    policy = EgressPolicy.from_entries([], resolver=resolver)
    config = config_for(llm, "openai_compatible", base_url="http://nowhere.gatehouse.test/v1", base_url_trusted=False)

    with pytest.raises(ProviderUnavailable, match="could not resolve the provider's host name"):
        complete(open_client(config, egress_policy=policy), seconds=1.0)


def test_a_web_process_never_imports_the_sdks():
    """The SDKs (with httpx) cost ~90 MB and ~2 s per process: only a worker running an agent loads them."""
    code = (
        "import sys, django; django.setup(); import tasks.runner, tasks.services, tasks.views, config.urls; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'openai', 'anthropic', 'httpx2', 'httpcore2'}))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stderr
