"""Language-model clients for agent runs: OpenAI, Anthropic and OpenAI-compatible servers, by tool calling.

Plain Python like the rest of tasks.runner (no Django). Interface, used by tasks.runner.agent::

    from tasks.runner.providers import (PROVIDERS, ProviderConfig, ToolSpec, ToolCall, ModelReply,
        UserTurn, AssistantTurn, ToolResult, ToolResultTurn, Turn, ModelClient, open_client,
        ProviderError, ProviderRejectedKey, ProviderUnavailable, ProviderBlocked, ProviderCancelled)

open_client(config, *, egress_policy=None) -> ModelClient
    Makes no connection. Raises ProviderError for a configuration that cannot work (unknown
    provider, a base_url that is not http(s), no key; openai_compatible may have no key).

ModelClient.complete(*, system, turns, tools, deadline, cancel_event) -> ModelReply
    One model answer, a tool call forced when tools are offered (OpenAI ``tool_choice:
    "required"``, Anthropic ``{"type": "any"}``). ``deadline`` is a ``time.monotonic()`` value;
    each HTTP attempt gets min(call_timeout_s, time left). 429, 408/409, 5xx, timeouts and
    connection failures are retried with back-off (``Retry-After``/``retry-after-ms`` honoured,
    capped at 30 s) while the deadline allows; then ProviderUnavailable naming the last failure.
    401/403 -> ProviderRejectedKey at once ("provider rejected the key (HTTP 401)"); another 4xx
    -> ProviderUnavailable with the provider's short message; a base_url (not the default, not
    ``base_url_trusted``) whose host the egress policy refuses -> ProviderBlocked before any
    request, and otherwise every connection goes to the address that was checked (pinned, never
    re-resolved). ``cancel_event.set()`` -> ProviderCancelled within ~0.1 s, also during a slow
    answer (its connection is shut down) or a back-off wait. One call at a time per client.
ModelClient.close()
    Closes the connections; the client is not used after it.

ToolCall.arguments is None when the model's arguments are not a JSON object (``raw_arguments``
keeps them, to feed the error back). No key, header or model text is logged, and no exception
message carries the key.
"""

from .conversation import (
    PROVIDERS,
    AssistantTurn,
    ModelClient,
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
    Turn,
    UserTurn,
)


def open_client(config: ProviderConfig, **options) -> ModelClient:
    """See ``client.open_client``. Imported on first use: the SDKs (with httpx) cost a process ~90 MB and
    ~2 s to import, and only a worker running an agent needs them, never a web process."""
    from .client import open_client as open_sdk_client

    return open_sdk_client(config, **options)


__all__ = [
    "PROVIDERS",
    "AssistantTurn",
    "ModelClient",
    "ModelReply",
    "ProviderBlocked",
    "ProviderCancelled",
    "ProviderConfig",
    "ProviderError",
    "ProviderRejectedKey",
    "ProviderUnavailable",
    "ToolCall",
    "ToolResult",
    "ToolResultTurn",
    "ToolSpec",
    "Turn",
    "UserTurn",
    "open_client",
]
