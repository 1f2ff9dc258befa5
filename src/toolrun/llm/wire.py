"""The OpenAI chat-completions wire format: request bodies in, assistant messages out.

Pure functions and value objects, no I/O: :mod:`toolrun.llm.client` sends what
:func:`chat_request` builds and reads replies with :func:`parse_completion`; the router's
prompts live elsewhere (:mod:`toolrun.nl.llm_router`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]
_MAX_UPSTREAM_MESSAGE = 500


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asked for; ``arguments`` is the JSON text it wrote."""

    name: str
    arguments: str = "{}"
    id: str | None = None

    def parsed_arguments(self) -> Any:
        """The arguments decoded (an empty text is ``{}``); :class:`ValueError` if not JSON."""
        return json.loads(self.arguments) if self.arguments.strip() else {}

    def to_dict(self) -> dict[str, Any]:
        call: dict[str, Any] = {
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }
        if self.id is not None:
            call["id"] = self.id
        return call


@dataclass(frozen=True)
class AssistantMessage:
    """The assistant's reply: text, function calls, or both."""

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    raw: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def text(cls, content: str) -> AssistantMessage:
        return cls(content=content, finish_reason="stop")

    @classmethod
    def calling(
        cls, name: str, arguments: Mapping[str, Any] | str, *, id: str = "call_0"
    ) -> AssistantMessage:
        text = arguments if isinstance(arguments, str) else json.dumps(dict(arguments))
        return cls(tool_calls=(ToolCall(name, text, id),), finish_reason="tool_calls")

    def to_message(self) -> Message:
        """This reply as a ``messages[]`` entry, to continue the conversation."""
        message: Message = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        return message


def chat_request(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: str | Mapping[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """A ``POST /chat/completions`` body; ``options`` (``temperature``, ...) go in as given,
    ``None`` values left out."""
    body: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages]}
    if tools:
        body["tools"] = [dict(t) for t in tools]
        if tool_choice is not None:
            body["tool_choice"] = tool_choice
    body.update({k: v for k, v in options.items() if v is not None})
    return body


def tool_result_message(call_id: str | None, content: str) -> Message:
    """The ``tool`` message answering a call (how a repair round tells the model its error)."""
    return {"role": "tool", "tool_call_id": call_id or "call_0", "content": content}


def _text(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        parts = [p.get("text") for p in content if isinstance(p, Mapping)]
        return "".join(p for p in parts if isinstance(p, str))
    raise ValueError(f"message content is a {type(content).__name__}, not text")


def _tool_call(entry: Any) -> ToolCall:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("function"), Mapping):
        raise ValueError("a tool_calls entry has no 'function' object")
    function = entry["function"]
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("a tool call has no function name")
    arguments = function.get("arguments")
    if arguments is None:
        arguments = "{}"
    elif not isinstance(arguments, str):  # some servers send the object itself
        arguments = json.dumps(arguments)
    call_id = entry.get("id")
    return ToolCall(name, arguments, call_id if isinstance(call_id, str) else None)


def parse_completion(body: Any) -> AssistantMessage:
    """The first choice's message of a chat completion; :class:`ValueError` saying what is
    wrong when ``body`` is not one."""
    if not isinstance(body, Mapping):
        raise ValueError(f"expected a JSON object, got {type(body).__name__}")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise ValueError("no 'choices' in the reply")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, Mapping):
        raise ValueError("the first choice has no 'message' object")
    entries = message.get("tool_calls") or []
    if not isinstance(entries, list):
        raise ValueError("'tool_calls' is not a list")
    calls = [_tool_call(entry) for entry in entries]
    legacy = message.get("function_call")  # the pre-tools ``functions`` API
    if not calls and isinstance(legacy, Mapping):
        calls.append(_tool_call({"function": legacy}))
    finish = choice.get("finish_reason")
    return AssistantMessage(
        content=_text(message.get("content")),
        tool_calls=tuple(calls),
        finish_reason=finish if isinstance(finish, str) else None,
        raw=body,
    )


def upstream_message(text: str) -> str:
    """The human part of an error body (OpenAI, vLLM, Ollama and llama.cpp shapes), else the
    text itself, shortened."""
    found: Any = None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, Mapping):
        error = data.get("error")
        if isinstance(error, Mapping):
            found = error.get("message")
        elif isinstance(error, str):
            found = error
        if found is None:
            found = data.get("message") or data.get("detail")
    message = str(found) if found is not None else text
    message = " ".join(message.split())
    if len(message) > _MAX_UPSTREAM_MESSAGE:
        message = message[: _MAX_UPSTREAM_MESSAGE - 3] + "..."
    return message or "(empty body)"
