"""Messages in Anthropic's Messages API format: ``(system, messages)``.

- System and developer messages, wherever they stand, join (by blank lines) the top-level
  ``system`` parameter; there is no ``developer`` role.
- A user message is ``{"role": "user", "content": str | [blocks]}`` with ``text`` and
  ``image`` blocks (``source``: ``{"type": "base64", "media_type", "data"}`` or ``{"type":
  "url", "url"}``).
- An assistant message with tool calls has a ``text`` block (if it has text) and one
  ``tool_use`` block (``id``, ``name``, ``input``) per call; without, its content is the text.
- Tool messages become ``tool_result`` blocks (``tool_use_id``, ``content``, ``is_error``) of a
  user message; consecutive ones share one user message.

Anthropic cannot say a message's ``name``, an image's ``detail`` or arguments that are not
JSON, and it has one system text, first; everything else survives ``from_anthropic(raw,
system)`` of ``system, raw = to_anthropic(messages)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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


def to_anthropic(messages: Iterable[Message]) -> tuple[str | None, list[dict[str, Any]]]:
    """``(system, messages)``: pass them as ``client.messages.create(system=..., messages=...)``
    (leave ``system`` out when it is None)."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    results: list[dict[str, Any]] | None = None  # the tool_result blocks being gathered
    for message in messages:
        if isinstance(message, ToolMessage):
            if results is None:
                results = []
                out.append({"role": "user", "content": results})
            results.append(_result_block(message))
            continue
        results = None
        if isinstance(message, SystemMessage | DeveloperMessage):
            system.append(message.content)
        elif isinstance(message, UserMessage):
            content: Any = message.content
            if not isinstance(content, str):
                content = [_part_block(p) for p in content]
            out.append({"role": "user", "content": content})
        elif isinstance(message, AssistantMessage):
            out.append({"role": "assistant", "content": _assistant_content(message)})
        else:
            raise TypeError(f"not a message: {type(message).__name__}")
    return ("\n\n".join(system) if system else None), out


def _result_block(message: ToolMessage) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": message.tool_call_id,
        "content": message.content,
    }
    if message.is_error:
        block["is_error"] = True
    return block


def _part_block(part: ContentPart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if part.url is not None:
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    source = {"type": "base64", "media_type": part.media_type, "data": part.data}
    return {"type": "image", "source": source}


def _assistant_content(message: AssistantMessage) -> str | list[dict[str, Any]]:
    if not message.tool_calls:
        return message.content or ""
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls:
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": dict(call.arguments)}
        )
    return blocks


def from_anthropic(
    messages: Iterable[Mapping[str, Any]], system: str | Sequence[Mapping[str, Any]] | None = None
) -> list[AnyMessage]:
    """The messages of a request: ``system`` (a string or text blocks) first, as a
    :class:`SystemMessage`, then each message; a user message's ``tool_result`` blocks become
    :class:`ToolMessage` s."""
    out: list[AnyMessage] = []
    if system is not None:
        text = system if isinstance(system, str) else _joined(system, "system")
        out.append(SystemMessage(text))
    for message in messages:
        role, content = message.get("role"), message.get("content")
        if role == "assistant":
            out.append(_assistant(content))
        elif role == "user":
            out.extend(_user(content))
        else:
            raise ValueError(f"unknown Anthropic message role {role!r} (user or assistant)")
    return out


def _joined(blocks: Iterable[Mapping[str, Any]], where: str) -> str:
    texts = []
    for block in blocks:
        if block.get("type") != "text":
            raise ValueError(f"unsupported {block.get('type')!r} block in {where} (text is)")
        texts.append(str(block["text"]))
    return "\n".join(texts)


def _assistant(content: Any) -> AssistantMessage:
    if isinstance(content, str):
        return AssistantMessage(content)
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in content or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block["text"]))
        elif kind == "tool_use":
            calls.append(ToolCall(str(block["id"]), str(block["name"]), dict(block["input"])))
        else:
            raise ValueError(f"unsupported assistant block {kind!r} (text and tool_use are)")
    return AssistantMessage("\n".join(texts) if texts else None, calls)


def _user(content: Any) -> list[AnyMessage]:
    """A user turn: its tool results, then (if any) what the user said, in block order."""
    if isinstance(content, str):
        return [UserMessage(content)]
    out: list[AnyMessage] = []
    parts: list[ContentPart] = []
    for block in content or []:
        kind = block.get("type")
        if kind == "tool_result":
            if parts:
                out.append(UserMessage(parts))
                parts = []
            out.append(_tool_message(block))
        elif kind == "text":
            parts.append(TextPart(str(block["text"])))
        elif kind == "image":
            parts.append(_image(block["source"]))
        else:
            raise ValueError(f"unsupported user block {kind!r} (text, image, tool_result are)")
    if parts:
        out.append(UserMessage(parts))
    return out


def _tool_message(block: Mapping[str, Any]) -> ToolMessage:
    content = block.get("content", "")
    text = content if isinstance(content, str) else _joined(content, "tool_result")
    return ToolMessage(text, str(block["tool_use_id"]), bool(block.get("is_error", False)))


def _image(source: Mapping[str, Any]) -> ImagePart:
    if source.get("type") == "url":
        return ImagePart(url=str(source["url"]))
    if source.get("type") == "base64":
        return ImagePart(data=str(source["data"]), media_type=str(source["media_type"]))
    raise ValueError(f"unsupported image source {source.get('type')!r} (base64 and url are)")
