"""``open_client``: a ModelClient for a ProviderConfig, on the official SDK with our transport beneath it."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import partial
from types import ModuleType
from urllib.parse import urlsplit

import httpx2

from tasks.runner.egress import EgressPolicy

from . import anthropic_messages, openai_chat
from .calls import Failure, call_with_retries
from .conversation import PROVIDERS, ModelReply, ProviderConfig, ProviderError, ToolSpec, Turn
from .failures import classify
from .transport import ProviderTransport

DEFAULT_BASE_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}
CONNECT_TIMEOUT_MAX_S = 10.0
# The OpenAI SDK insists on a key; a local server (Ollama, vLLM) often needs none.
NO_KEY_PLACEHOLDER = "no-key"


def open_client(config: ProviderConfig, *, egress_policy: EgressPolicy | None = None) -> SDKModelClient:
    """A client for ``config``; no connection is made yet (the egress check is made by the first call).

    ``egress_policy`` replaces the one built from ``config.egress_allowlist`` (a test's resolver).
    Raises ProviderError for a configuration that cannot work (unknown provider, bad base_url, no key).
    """
    if config.provider not in PROVIDERS:
        raise ProviderError(f"unknown provider {config.provider!r}")
    base_url = config.base_url or DEFAULT_BASE_URLS.get(config.provider, "")
    if not base_url:
        raise ProviderError("openai_compatible needs a base_url")
    host, port = _host_and_port(base_url)
    checked = bool(config.base_url) and not config.base_url_trusted
    policy = (egress_policy or _policy(config.egress_allowlist)) if checked else None
    api_key = config.api_key or (NO_KEY_PLACEHOLDER if config.provider == "openai_compatible" else "")
    if not api_key:
        raise ProviderError(f"no API key is set for {config.provider}")
    transport = ProviderTransport(host=host, port=port, policy=policy)
    http_client = httpx2.Client(
        transport=transport,  # with a transport given, httpx ignores the *_PROXY variables
        timeout=httpx2.Timeout(config.call_timeout_s, connect=min(config.call_timeout_s, CONNECT_TIMEOUT_MAX_S)),
        follow_redirects=False,  # a redirect would lead off the checked host
        trust_env=False,  # no ~/.netrc credentials either
    )
    adapter = anthropic_messages if config.provider == "anthropic" else openai_chat
    sdk_class = anthropic_messages.sdk.Anthropic if adapter is anthropic_messages else openai_chat.sdk.OpenAI
    sdk_client = sdk_class(
        api_key=api_key,
        base_url=base_url,
        max_retries=0,
        http_client=http_client,
        default_headers=_environment_headers_withheld(adapter.sdk),
    )
    return SDKModelClient(config=config, adapter=adapter, sdk_client=sdk_client, transport=transport)


class SDKModelClient:
    """A ModelClient over one SDK client: requests built and read by ``adapter``, calls run by calls.py."""

    def __init__(self, *, config: ProviderConfig, adapter: ModuleType, sdk_client, transport: ProviderTransport):
        self.config, self._adapter, self._sdk_client, self._transport = config, adapter, sdk_client, transport

    def __repr__(self) -> str:
        return f"<SDKModelClient {self.config.provider} {self.config.model}>"

    def complete(
        self,
        *,
        system: str,
        turns: Sequence[Turn],
        tools: Sequence[ToolSpec],
        deadline: float,
        cancel_event: threading.Event,
    ) -> ModelReply:
        request = self._adapter.build_request(self.config, system=system, turns=turns, tools=tools)
        return call_with_retries(
            partial(self._attempt, request),
            classify=partial(self._classify, request),
            deadline=deadline,
            call_timeout_s=self.config.call_timeout_s,
            cancel_event=cancel_event,
            abort=self._transport.abort,
            reset=self._transport.reset,
        )

    def close(self) -> None:
        self._transport.abort()
        self._sdk_client.close()

    def _attempt(self, request: dict, timeout: float) -> ModelReply:
        self._transport.pin()  # on the helper thread: resolving a name may take a while
        return self._adapter.send(self._sdk_client, request, timeout)

    def _classify(self, request: dict, error: BaseException) -> Failure:
        if self._adapter.adjust(request, error, self.config.api_key):
            return Failure("the provider refused a parameter; asked again without it", again_now=True)
        return classify(error, sdk=self._adapter.sdk, secret=self.config.api_key)


def _environment_headers_withheld(sdk: ModuleType) -> dict:
    """The headers an SDK would add from the process's environment, omitted: the config is the whole truth.

    OpenAI's SDK sends OPENAI_ORG_ID / OPENAI_PROJECT_ID (the operator's) with every request, which
    a user's key on api.openai.com refuses and a user's own server has no business seeing;
    Anthropic's sends every header of ANTHROPIC_CUSTOM_HEADERS. Explicit default headers win over
    both, and ``Omit`` leaves the header out.
    """
    if sdk is openai_chat.sdk:
        names = ["OpenAI-Organization", "OpenAI-Project"]
    else:
        lines = os.environ.get("ANTHROPIC_CUSTOM_HEADERS", "").split("\n")
        names = [line.split(":", 1)[0].strip() for line in lines if ":" in line]
    return {name: sdk.Omit() for name in names if name}


def _host_and_port(base_url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ProviderError("the provider's base_url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProviderError("the provider's base_url must be an http(s) URL with a host")
    return parts.hostname, port


def _policy(entries: tuple[str, ...]) -> EgressPolicy:
    try:
        return EgressPolicy.from_entries(entries)
    except ValueError as error:
        raise ProviderError(str(error)) from None
