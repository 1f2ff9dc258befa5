"""Messages in OpenAI's chat format (``messages=[...]`` of Chat Completions).

- ``{"role": "system" | "developer" | "user", "content", "name"?}``; user content is a string
  or a list of ``{"type": "text", "text"}`` and ``{"type": "image_url", "image_url": {"url",
  "detail"?}}`` parts (inline images are ``data:<media type>;base64,<data>`` URLs);
- ``{"role": "assistant", "content": str | None, "tool_calls"?: [{"id", "type": "function",
  "function": {"name", "arguments": "<JSON text>"}}]}``;
- ``{"role": "tool", "tool_call_id", "content"}``.

``from_openai(to_openai(messages)) == messages`` for every message except a
``ToolMessage.is_error``, which this format cannot say.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from toolrun.messages.types import (
    AnyMessage,
    AssistantMessage,
    ContentPart,
    DeveloperMessage,
    ImagePart,
    Message,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    UserMessage,
)

_DATA_URL = re.compile(r"data:(?P<type>[^;,]+);base64,(?P<data>.*)", re.S)


def to_openai(messages: Iterable[Message]) -> list[dict[str, Any]]:
    return [message_to_openai(m) for m in messages]


def from_openai(messages: Iterable[Mapping[str, Any]]) -> list[AnyMessage]:
    return [message_from_openai(m) for m in messages]


def _named(out: dict[str, Any], name: str | None) -> dict[str, Any]:
    if name is not None:
        out["name"] = name
    return out


def message_to_openai(message: Message) -> dict[str, Any]:
    if isinstance(message, SystemMessage | DeveloperMessage):
        return _named({"role": message.role, "content": message.content}, message.name)
    if isinstance(message, UserMessage):
        content: Any = message.content
        if not isinstance(content, str):
            content = [_part_to_openai(p) for p in content]
        return _named({"role": "user", "content": content}, message.name)
    if isinstance(message, AssistantMessage):
        out: dict[str, Any] = {"role": "assistant", "content": message.content}
        if message.tool_calls:
            out["tool_calls"] = [_call_to_openai(c) for c in message.tool_calls]
        return _named(out, message.name)
    if isinstance(message, ToolMessage):
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    raise TypeError(f"not a message: {type(message).__name__}")


def _part_to_openai(part: ContentPart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    url = part.url if part.url is not None else f"data:{part.media_type};base64,{part.data}"
    image: dict[str, Any] = {"url": url}
    if part.detail is not None:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def _call_to_openai(call: ToolCall) -> dict[str, Any]:
    arguments = call.raw_arguments
    if arguments is None:
        arguments = json.dumps(dict(call.arguments), ensure_ascii=False)
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }


def message_from_openai(data: Mapping[str, Any]) -> AnyMessage:
    role = data.get("role")
    name = data.get("name")
    if role in ("system", "developer"):
        text = _text(data.get("content"))
        return SystemMessage(text, name) if role == "system" else DeveloperMessage(text, name)
    if role == "user":
        content = data.get("content")
        if isinstance(content, str):
            return UserMessage(content, name)
        return UserMessage([_part_from_openai(p) for p in content or []], name)
    if role == "assistant":
        content = data.get("content")
        calls = [_call_from_openai(c) for c in data.get("tool_calls") or []]
        return AssistantMessage(None if content is None else _text(content), calls, name)
    if role == "tool":
        return ToolMessage(_text(data.get("content")), str(data["tool_call_id"]))
    raise ValueError(f"unknown OpenAI message role {role!r}")


def _text(content: Any) -> str:
    """A string content, or the text parts of a list content joined."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


def _part_from_openai(part: Mapping[str, Any]) -> ContentPart:
    kind = part.get("type")
    if kind == "text":
        return TextPart(str(part["text"]))
    if kind == "image_url":
        image = part["image_url"]
        image = {"url": image} if isinstance(image, str) else image
        inline = _DATA_URL.fullmatch(image["url"])
        detail = image.get("detail")
        if inline:
            return ImagePart(data=inline["data"], media_type=inline["type"], detail=detail)
        return ImagePart(url=image["url"], detail=detail)
    raise ValueError(f"unsupported OpenAI content part {kind!r} (text and image_url are)")


def _call_from_openai(data: Mapping[str, Any]) -> ToolCall:
    function = data["function"]
    raw = function.get("arguments") or "{}"
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        return ToolCall(str(data["id"]), str(function["name"]), {}, str(raw))
    return ToolCall(str(data["id"]), str(function["name"]), arguments)
