"""A local language-model server for tests: OpenAI Chat Completions and Anthropic Messages, scripted.

A pytest plugin (listed in the root conftest.py's ``pytest_plugins``): any test asks for it by name::

    def test_something(llm_server):
        llm_server.expected_key = "sk-test"            # 401 for any other key (default: any key)
        llm_server.script([tool("fill", {"selector": "#q", "text": "x"}, reason="type it"), status(429)])
        ProviderConfig(provider="openai_compatible", base_url=llm_server.openai_base_url, ...)

It speaks the real wire protocols, so the official SDKs parse its answers and errors:
``POST /v1/chat/completions`` (``choices[0].message.tool_calls`` with ``function.arguments`` a
JSON string, ``usage``) and ``POST /v1/messages`` (``tool_use`` content blocks, ``stop_reason``,
``usage``), with the providers' own error bodies for 4xx/5xx. With ``expected_key`` set, any
other key is a 401 (OpenAI: ``Authorization: Bearer``; Anthropic: ``x-api-key`` or a Bearer
token, which is what its 2.x SDK sends for an api_key). The server runs in the test
process on a thread (127.0.0.1, a free port), so a Celery worker process reaches it by URL too.

Answers, consumed in order from ``script([...])``, or chosen by ``policy(fn)``, where ``fn`` gets
an LLMRequest (provider, model, tool names offered, the text after the last assistant message,
the JSON body) and returns an answer:
    tool(name, arguments, reason="", usage=None)   a tool call, ``reason`` as text beside it
    malformed(raw)                                  a tool call whose arguments are not JSON
    text_only(text)                                 no tool call
    status(code, retry_after=None, message=None)    an error answer (401, 429, 500, 529...)
    slow(seconds, then=answer)                      ``then`` after a delay
With the script used up and no policy, the answer is a 400 saying so (never retried).
``requests`` records every request (path, headers with lower-case names, JSON body).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"


# ANSWERS
# ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    name: str
    arguments: dict
    reason: str = ""
    usage: tuple[int, int] | None = None


@dataclass(frozen=True)
class Malformed:
    raw: str
    name: str = "fill"


@dataclass(frozen=True)
class TextOnly:
    text: str


@dataclass(frozen=True)
class Status:
    code: int
    retry_after: float | None = None
    message: str | None = None


@dataclass(frozen=True)
class Slow:
    seconds: float
    then: object


Answer = Tool | Malformed | TextOnly | Status | Slow


def tool(name: str, arguments: dict, *, reason: str = "", usage: tuple[int, int] | None = None) -> Tool:
    return Tool(name, arguments, reason, usage)


def malformed(raw: str, *, name: str = "fill") -> Malformed:
    return Malformed(raw, name)


def text_only(text: str) -> TextOnly:
    return TextOnly(text)


def status(code: int, *, retry_after: float | None = None, message: str | None = None) -> Status:
    return Status(code, retry_after, message)


def slow(seconds: float, *, then: Answer | None = None) -> Slow:
    return Slow(seconds, then if then is not None else text_only("a slow answer"))


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict | None


@dataclass(frozen=True)
class LLMRequest:
    """A request, provider-neutral, for a policy."""

    provider: str  # "openai" or "anthropic" (the wire protocol)
    model: str
    tool_names: tuple[str, ...]
    last_text: str  # the user and tool text after the last assistant message
    body: dict = field(repr=False)


# THE WIRE FORMATS
# ------------------------------------------------------------------------------


def _usage_for(answer, body_size: int) -> tuple[int, int]:
    if isinstance(answer, Tool) and answer.usage is not None:
        return answer.usage
    return max(body_size // 4, 1), 7


def _openai_answer(answer, model: str, body_size: int) -> dict:
    message: dict = {"role": "assistant", "content": None, "refusal": None}
    finish = "stop"
    if isinstance(answer, TextOnly):
        message["content"] = answer.text
    else:
        arguments = answer.raw if isinstance(answer, Malformed) else json.dumps(answer.arguments)
        message["content"] = (answer.reason or None) if isinstance(answer, Tool) else None
        call = {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function"}
        call["function"] = {"name": answer.name, "arguments": arguments}
        message["tool_calls"] = [call]
        finish = "tool_calls"
    prompt, completion = _usage_for(answer, body_size)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


def _anthropic_answer(answer, model: str, body_size: int) -> dict:
    content: list[dict] = []
    stop = "end_turn"
    if isinstance(answer, TextOnly):
        content.append({"type": "text", "text": answer.text})
    else:
        if isinstance(answer, Tool) and answer.reason:
            content.append({"type": "text", "text": answer.reason})
        tool_input = answer.raw if isinstance(answer, Malformed) else answer.arguments
        content.append(
            {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": answer.name, "input": tool_input}
        )
        stop = "tool_use"
    prompt, completion = _usage_for(answer, body_size)
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": prompt, "output_tokens": completion},
    }


_OPENAI_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    429: ("requests", "rate_limit_exceeded"),
}
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_DEFAULT_MESSAGES = {
    400: "Invalid request.",
    403: "Country, region, or territory not supported",
    429: "Rate limit reached for requests. Please try again in 200ms.",
    500: "The server had an error while processing your request. Sorry about that!",
    529: "Overloaded",
}


def _openai_error(code: int, message: str | None, key: str) -> dict:
    kind, error_code = _OPENAI_ERRORS.get(code, ("server_error" if code >= 500 else "invalid_request_error", None))
    if message is None and code == 401:
        # As OpenAI does: part of the key is shown, which a client must not pass on.
        shown = f"{key[:3]}{'*' * max(len(key) - 7, 0)}{key[-4:]}" if len(key) > 7 else "***"
        message = (
            f"Incorrect API key provided: {shown}. "
            "You can find your API key at https://platform.openai.com/account/api-keys."
        )
    return {
        "error": {
            "message": message or _DEFAULT_MESSAGES.get(code, "Error."),
            "type": kind,
            "param": None,
            "code": error_code,
        }
    }


def _anthropic_error(code: int, message: str | None) -> dict:
    kind = _ANTHROPIC_ERRORS.get(code, "api_error" if code >= 500 else "invalid_request_error")
    default = "invalid x-api-key" if code == 401 else _DEFAULT_MESSAGES.get(code, "Internal server error")
    return {"type": "error", "error": {"type": kind, "message": message or default}}


def _neutral_request(provider: str, body: dict) -> LLMRequest:
    messages = body.get("messages") or []
    if provider == "openai":
        names = tuple(t.get("function", {}).get("name", "") for t in body.get("tools") or [])
    else:
        names = tuple(t.get("name", "") for t in body.get("tools") or [])
    trailing = []
    for message in reversed(messages):
        if message.get("role") == "assistant":
            break
        trailing.insert(0, message)
    last_text = "\n".join(t for m in trailing for t in _texts(m.get("content")) if t)
    return LLMRequest(provider=provider, model=body.get("model", ""), tool_names=names, last_text=last_text, body=body)


def _texts(content) -> list[str]:
    if isinstance(content, str):
        return [content]
    texts = []
    for part in content or []:
        if part.get("type") == "text":
            texts.append(part.get("text", ""))
        elif part.get("type") == "tool_result":
            texts.extend(_texts(part.get("content")))
    return texts


# THE SERVER
# ------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the providers' servers
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall between them
    server_version = "GatehouseTestLLM/1"

    def log_message(self, format, *args):  # noqa: A002 -- BaseHTTPRequestHandler's signature
        pass

    def do_POST(self):  # noqa: N802 -- BaseHTTPRequestHandler's naming
        llm: LLMServer = self.server.llm
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {name.lower(): value for name, value in self.headers.items()}
        llm._record(RecordedRequest(path=self.path, headers=headers, body=body))
        provider = {OPENAI_PATH: "openai", ANTHROPIC_PATH: "anthropic"}.get(self.path.split("?")[0])
        if provider is None:
            return self._json(404, {"error": {"message": f"Unknown path {self.path}", "type": "invalid_request_error"}})
        if not isinstance(body, dict):
            return self._error(provider, 400, "The request body is not valid JSON.", "")
        sent_key = self._sent_key(provider)
        if llm.expected_key is not None and sent_key != llm.expected_key:
            return self._error(provider, 401, None, sent_key)
        answer = llm._next_answer(_neutral_request(provider, body))
        self._answer(provider, answer, body, len(raw), sent_key)

    def _sent_key(self, provider: str) -> str:
        # Anthropic's API takes x-api-key, and a Bearer token (what its 2.x SDK sends for an api_key).
        bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
        return self.headers.get("x-api-key", bearer) if provider == "anthropic" else bearer

    def _answer(self, provider: str, answer, body: dict, size: int, sent_key: str) -> None:
        while isinstance(answer, Slow):
            if self.server.llm._stopping.wait(answer.seconds):
                return
            answer = answer.then
        if isinstance(answer, Status):
            headers = {}
            if answer.retry_after is not None:
                headers["retry-after"] = f"{answer.retry_after:g}"
            return self._error(provider, answer.code, answer.message, sent_key, headers)
        model = body.get("model", "")
        document = (
            _openai_answer(answer, model, size) if provider == "openai" else _anthropic_answer(answer, model, size)
        )
        self._json(200, document)

    def _error(self, provider: str, code: int, message: str | None, key: str, headers: dict | None = None) -> None:
        document = _openai_error(code, message, key) if provider == "openai" else _anthropic_error(code, message)
        self._json(code, document, headers)

    def _json(self, code: int, document: dict, headers: dict | None = None) -> None:
        payload = json.dumps(document).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:16]}")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a cancelled or timed-out call)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, llm: LLMServer):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.llm = llm
        self.connections: set[socket.socket] = set()

    def get_request(self):
        conn, address = super().get_request()
        self.connections.add(conn)
        return conn, address

    def shutdown_request(self, request):
        self.connections.discard(request)
        super().shutdown_request(request)


class LLMServer:
    """The running server: ``openai_base_url``, ``anthropic_base_url``, ``script``, ``policy``, ``requests``."""

    def __init__(self):
        self.expected_key: str | None = None
        self.requests: list[RecordedRequest] = []
        self._answers: list = []
        self._policy: Callable[[LLMRequest], Answer] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server(self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="llm-server", daemon=True)

    @property
    def openai_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def base_url(self, provider: str) -> str:
        return self.anthropic_base_url if provider == "anthropic" else self.openai_base_url

    def script(self, answers: list) -> None:
        with self._lock:
            self._answers = list(answers)

    def policy(self, choose: Callable[[LLMRequest], Answer]) -> None:
        with self._lock:
            self._policy = choose

    def start(self) -> LLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()  # slow answers end now
        self._server.shutdown()
        for conn in list(self._server.connections):  # idle keep-alive connections too
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join(5)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_answer(self, request: LLMRequest):
        with self._lock:
            if self._answers:
                return self._answers.pop(0)
            choose = self._policy
        if choose is not None:
            return choose(request)
        return status(400, message="llm_server: no scripted answer left")


@pytest.fixture
def llm_server():
    """A running LLMServer for one test."""
    server = LLMServer().start()
    yield server
    server.stop()
