"""Anthropic Messages (provider "anthropic").

Turns map to content blocks: an AssistantTurn is an assistant message of ``text`` and
``tool_use`` blocks; the ToolResultTurn after it is a user message of ``tool_result`` blocks
(first, as the API requires) followed by the observation's ``text`` and ``image`` blocks. The API
wants the roles to alternate, so consecutive messages of one role are merged. A tool call is
forced with ``tool_choice: {"type": "any"}``; the model then writes no text before it, so a
reason the agent wants should be a tool parameter. ``ProviderConfig.temperature`` is not sent:
the API (as of the anthropic 2.x SDK) no longer takes one.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

import anthropic

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

sdk = anthropic


def build_request(config: ProviderConfig, *, system: str, turns: Sequence[Turn], tools: Sequence[ToolSpec]) -> dict:
    """The keyword arguments of ``messages.create``."""
    request = {
        "model": config.model,
        "max_tokens": config.max_output_tokens,
        "messages": _alternating([_message(turn) for turn in turns]),
    }  # no temperature: the Messages API of this SDK (anthropic 2.x) has no such parameter
    if system:  # an empty system prompt is refused
        request["system"] = system
    if tools:
        request["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools]
        request["tool_choice"] = {"type": "any"}
    return request


def send(client: anthropic.Anthropic, request: dict, timeout: float) -> ModelReply:
    message = client.messages.create(**request, timeout=timeout)
    texts, calls = [], []
    for block in message.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            calls.append(_tool_call(block))
    usage = message.usage
    return ModelReply(
        text="\n".join(t for t in texts if t),
        tool_calls=tuple(calls),
        input_tokens=(usage.input_tokens or 0) if usage else 0,
        output_tokens=(usage.output_tokens or 0) if usage else 0,
    )


def adjust(request: dict, error: BaseException, secret: str) -> bool:
    return False  # nothing to drop: the Messages API takes every parameter we send


def _message(turn: Turn) -> dict:
    if isinstance(turn, UserTurn):
        return {"role": "user", "content": _observation(turn.text, turn.image_jpeg)}
    if isinstance(turn, AssistantTurn):
        return {"role": "assistant", "content": _assistant_blocks(turn.reply)}
    if isinstance(turn, ToolResultTurn):
        results = [
            {"type": "tool_result", "tool_use_id": r.call_id, "content": r.content, "is_error": r.is_error}
            for r in turn.results
        ]
        return {"role": "user", "content": results + _observation(turn.text, turn.image_jpeg)}
    raise TypeError(f"not a conversation turn: {type(turn).__name__}")


def _observation(text: str, image_jpeg: bytes | None) -> list[dict]:
    blocks = [{"type": "text", "text": text}] if text else []  # an empty text block is refused
    if image_jpeg is not None:
        data = base64.b64encode(image_jpeg).decode("ascii")
        blocks.append({"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": data}})
    return blocks


def _assistant_blocks(reply: ModelReply) -> list[dict]:
    blocks = [{"type": "text", "text": reply.text}] if reply.text else []
    for call in reply.tool_calls:
        # The API wants an object: malformed arguments (already answered with an error) are sent back as none.
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments or {}})
    return blocks


def _alternating(messages: list[dict]) -> list[dict]:
    """Consecutive messages of one role merged into one, and none left empty."""
    merged: list[dict] = []
    for message in messages:
        if merged and merged[-1]["role"] == message["role"]:
            merged[-1]["content"].extend(message["content"])
        else:
            merged.append({"role": message["role"], "content": list(message["content"])})
    for message in merged:
        if not message["content"]:
            message["content"] = [{"type": "text", "text": "(empty)"}]
    return merged


def _tool_call(block) -> ToolCall:
    # The API sends the input parsed; a server that could not parse it may send it as a string instead.
    arguments = block.input if isinstance(block.input, dict) else None
    raw = block.input if isinstance(block.input, str) else json.dumps(block.input)
    return ToolCall(id=block.id, name=block.name, arguments=arguments, raw_arguments=raw)
