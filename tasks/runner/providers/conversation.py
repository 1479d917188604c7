"""The provider-neutral vocabulary: the configuration, the tools offered, the turns, the reply, the errors.

Each adapter (openai_chat.py, anthropic_messages.py) maps these to its API's messages and back,
so the agent loop never sees a provider's wire format.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

PROVIDERS = ("openai", "anthropic", "openai_compatible")


@dataclass(frozen=True)
class ProviderConfig:
    """Which model to call, where, with which key, and the limits of one call."""

    provider: str  # one of PROVIDERS
    model: str
    api_key: str = field(repr=False)  # never in repr, logs or exception messages
    base_url: str = ""  # "" -> the SDK's default endpoint
    base_url_trusted: bool = False  # the operator configured it (OPENAI_BASE_URL): not egress-checked
    temperature: float = 0.0
    call_timeout_s: float = 60.0  # per HTTP call (capped by the deadline)
    max_output_tokens: int = 1024
    egress_allowlist: tuple[str, ...] = ()  # EGRESS_ALLOWLIST entries (EgressPolicy.from_entries)


@dataclass(frozen=True)
class ToolSpec:
    """A tool offered to the model; ``parameters`` is a JSON Schema object."""

    name: str
    description: str
    parameters: dict


@dataclass(frozen=True)
class ToolCall:
    """One tool call of a reply; ``arguments`` is None when the model's arguments were not a JSON object."""

    id: str
    name: str
    arguments: dict | None
    raw_arguments: str  # as the model sent them (for feeding back an error)


@dataclass(frozen=True)
class ModelReply:
    """What the model answered: text written besides the tool calls, the calls, and the tokens counted."""

    text: str
    tool_calls: tuple[ToolCall, ...]
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class UserTurn:
    """The user's message, with an optional screenshot (for models that take images)."""

    text: str
    image_jpeg: bytes | None = None


@dataclass(frozen=True)
class AssistantTurn:
    """A previous reply, sent back as the assistant's message."""

    reply: ModelReply


@dataclass(frozen=True)
class ToolResult:
    """The outcome of one tool call."""

    call_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class ToolResultTurn:
    """Answers EVERY tool call of the AssistantTurn before it, then an optional observation (the page after)."""

    results: tuple[ToolResult, ...]
    text: str = ""
    image_jpeg: bytes | None = None


Turn = UserTurn | AssistantTurn | ToolResultTurn


class ProviderError(Exception):
    """A model call that failed; ``str(error)`` is a safe, user-facing message (no key, no headers)."""


class ProviderRejectedKey(ProviderError):
    """401/403: the message starts "provider rejected the key"."""


class ProviderUnavailable(ProviderError):
    """Retries exhausted within the deadline, no connection, or an answer or refusal that cannot be used."""


class ProviderBlocked(ProviderError):
    """The base_url's host is refused by the egress policy: "blocked by the egress policy: <host> (<why>)"."""


class ProviderCancelled(ProviderError):
    """The run was cancelled while the call was under way (or waiting to retry)."""


class ModelClient(Protocol):
    """A model behind one provider; one ``complete`` at a time."""

    def complete(
        self,
        *,
        system: str,
        turns: Sequence[Turn],
        tools: Sequence[ToolSpec],
        deadline: float,
        cancel_event: threading.Event,
    ) -> ModelReply: ...

    def close(self) -> None: ...
