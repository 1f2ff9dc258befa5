"""Answering one model turn: run its tool calls through a registry, append the answers.

``run_tool_calls(messages, registry)`` finds the last :class:`AssistantMessage`, runs each of
its tool calls not answered yet with ``registry.execute_function_call(name, arguments)``, and
appends one :class:`ToolMessage` per call. A failing call (unknown name, bad arguments, a tool
that raises) is answered with ``is_error=True`` and its message, never an exception, so the
model can be told and try again.
"""

from __future__ import annotations

from collections.abc import Callable, MutableSequence, Sequence
from typing import Any, Protocol

from toolrun.messages.message_list import MessageList
from toolrun.messages.types import AssistantMessage, Message, ToolCall, ToolMessage
from toolrun.response import Response, dumps


class FunctionRunner(Protocol):
    """What :func:`run_tool_calls` needs: a :class:`~toolrun.registry.registry.Registry`."""

    def execute_function_call(self, name: str, args: Any = None) -> Response: ...


class AsyncFunctionRunner(Protocol):
    async def aexecute_function_call(self, name: str, args: Any = None) -> Response: ...


Target = AssistantMessage | MessageList | MutableSequence[Message]
Render = Callable[[Response], str]


def tool_content(response: Response) -> str:
    """A tool message's text: the result's JSON value (``structuredContent``), else its text;
    for an error, ``{"error": "<message>"}``."""
    if response.is_error:
        return dumps({"error": response.text})
    if response.structured is not None:
        return dumps(response.structured)
    return response.text


def pending_calls(target: Target) -> list[ToolCall]:
    """The tool calls of the last assistant message that no tool message answers yet."""
    if isinstance(target, AssistantMessage):
        return list(target.tool_calls)
    messages: Sequence[Message] = target
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, AssistantMessage):
            answered = {m.tool_call_id for m in messages[index + 1 :] if isinstance(m, ToolMessage)}
            return [c for c in message.tool_calls if c.id not in answered]
    return []


def _answer(call: ToolCall, response: Response, render: Render) -> ToolMessage:
    return ToolMessage(render(response), call.id, response.is_error)


def _arguments(call: ToolCall) -> Any:
    return call.raw_arguments if call.raw_arguments is not None else dict(call.arguments)


def _append(target: Target, answers: list[ToolMessage]) -> list[ToolMessage]:
    if isinstance(target, MessageList):
        target.add_messages(answers)
    elif not isinstance(target, AssistantMessage):
        target.extend(answers)
    return answers


def run_tool_calls(
    target: Target, registry: FunctionRunner, *, render: Render = tool_content
) -> list[ToolMessage]:
    """Run the pending tool calls of ``target`` (a message list, or one assistant message)
    and return their tool messages, also appended to a list ``target``."""
    answers = [
        _answer(call, registry.execute_function_call(call.name, _arguments(call)), render)
        for call in pending_calls(target)
    ]
    return _append(target, answers)


async def arun_tool_calls(
    target: Target, registry: AsyncFunctionRunner, *, render: Render = tool_content
) -> list[ToolMessage]:
    """:func:`run_tool_calls` for event loops (``aexecute_function_call``; one at a time, in
    the order the model asked)."""
    answers = []
    for call in pending_calls(target):
        response = await registry.aexecute_function_call(call.name, _arguments(call))
        answers.append(_answer(call, response, render))
    return _append(target, answers)
