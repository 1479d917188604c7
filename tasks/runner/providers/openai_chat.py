"""OpenAI Chat Completions (provider "openai", and "openai_compatible": Ollama, vLLM, LiteLLM, Azure...).

Turns map to messages as the API wants them: an AssistantTurn is an assistant message with
``tool_calls``; the ToolResultTurn after it is one ``role: tool`` message per call, then (when
there is an observation) a user message with its text and the screenshot as a data: URL
``image_url`` part. A tool call is forced with ``tool_choice: "required"``.

Some servers refuse a parameter others need (reasoning models refuse a temperature, older
OpenAI-compatible servers ``tool_choice: "required"``): a 400 naming one of
``_DROPPABLE_PARAMETERS`` drops it and the call is made again at once, once per parameter.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

import openai

from .conversation import (
    AssistantTurn,
    ModelReply,
    ProviderConfig,
    ToolCall,
    ToolResultTurn,
    ToolSpec,
    Turn,
    UserTurn,
)
from .failures import provider_text, status_of

_DROPPABLE_PARAMETERS = ("temperature", "tool_choice")
sdk = openai


def build_request(config: ProviderConfig, *, system: str, turns: Sequence[Turn], tools: Sequence[ToolSpec]) -> dict:
    """The keyword arguments of ``chat.completions.create``."""
    messages = [{"role": "system", "content": system}] if system else []
    for turn in turns:
        messages.extend(_messages(turn))
    request = {"model": config.model, "messages": messages, "temperature": config.temperature}
    # OpenAI's own API calls it max_completion_tokens (max_tokens is refused by its reasoning models);
    # the compatible servers know max_tokens, not always the newer name.
    limit = "max_completion_tokens" if config.provider == "openai" else "max_tokens"
    request[limit] = config.max_output_tokens
    if tools:
        request["tools"] = [_tool(spec) for spec in tools]
        request["tool_choice"] = "required"
    return request


def send(client: openai.OpenAI, request: dict, timeout: float) -> ModelReply:
    completion = client.chat.completions.create(**request, timeout=timeout)
    message = completion.choices[0].message
    calls = tuple(_tool_call(call) for call in message.tool_calls or () if call.type == "function")
    usage = completion.usage
    return ModelReply(
        text=message.content or getattr(message, "refusal", None) or "",
        tool_calls=calls,
        input_tokens=(usage.prompt_tokens or 0) if usage else 0,
        output_tokens=(usage.completion_tokens or 0) if usage else 0,
    )


def adjust(request: dict, error: BaseException, secret: str) -> bool:
    """Drop a parameter the server refused with a 400; True when the request changed."""
    if status_of(error, sdk) != 400:
        return False
    refused = _refused_parameter(error, secret)
    if refused is None or refused not in request:
        return False
    del request[refused]
    return True


def _refused_parameter(error, secret: str) -> str | None:
    param = getattr(error, "body", None)
    named = param.get("param") if isinstance(param, dict) else None
    message = provider_text(error, secret).lower()
    for name in _DROPPABLE_PARAMETERS:
        if named == name or name in message:
            return name
    return None


def _tool(spec: ToolSpec) -> dict:
    return {
        "type": "function",
        "function": {"name": spec.name, "description": spec.description, "parameters": spec.parameters},
    }


def _messages(turn: Turn) -> list[dict]:
    if isinstance(turn, UserTurn):
        return [_user_message(turn.text, turn.image_jpeg)]
    if isinstance(turn, AssistantTurn):
        return [_assistant_message(turn.reply)]
    if isinstance(turn, ToolResultTurn):
        messages = [
            {"role": "tool", "tool_call_id": r.call_id, "content": f"error: {r.content}" if r.is_error else r.content}
            for r in turn.results
        ]
        if turn.text or turn.image_jpeg:
            messages.append(_user_message(turn.text, turn.image_jpeg))
        return messages
    raise TypeError(f"not a conversation turn: {type(turn).__name__}")


def _user_message(text: str, image_jpeg: bytes | None) -> dict:
    if image_jpeg is None:
        return {"role": "user", "content": text}
    parts = [{"type": "text", "text": text}] if text else []
    parts.append({"type": "image_url", "image_url": {"url": _data_url(image_jpeg)}})
    return {"role": "user", "content": parts}


def _assistant_message(reply: ModelReply) -> dict:
    message: dict = {"role": "assistant", "content": reply.text or None}
    if reply.tool_calls:  # an empty tool_calls list is refused by the API
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.raw_arguments}}
            for c in reply.tool_calls
        ]
    elif not reply.text:
        message["content"] = ""
    return message


def _tool_call(call) -> ToolCall:
    raw = call.function.arguments if isinstance(call.function.arguments, str) else ""
    return ToolCall(id=call.id, name=call.function.name, arguments=parse_arguments(raw), raw_arguments=raw)


def parse_arguments(raw: str) -> dict | None:
    """The arguments as a dict; None when they are not a JSON object. Blank means none (some servers send "")."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _data_url(image_jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(image_jpeg).decode("ascii")
