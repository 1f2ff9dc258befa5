"""One emulated model turn: fold the conversation, ask the upstream, read the calls back.

:func:`emulated_turn` sends the upstream plain messages (:mod:`toolrun.gateway.fold`: the tools
as Pydantic models and typed stubs in the system prompt, earlier calls and results folded into
text) and parses its reply (:func:`~toolrun.gateway.parse.parse_reply`). Then:

- a reply whose calls cannot be read, or whose arguments break a schema, gets **one repair
  round**: the model sees its reply and the error and answers again;
- code that loops or branches over calls is run with recording stubs when the sandbox tier is
  there (:mod:`toolrun.gateway.record`), else it is repaired like any other error;
- ``tool_choice`` ``required`` or a named function with no call in the reply gets **one
  re-prompt** saying so;
- what still fails is a 502 saying what the model did (``invalid_tool_call`` or
  ``tool_call_missing``), never a guess.

At most three upstream rounds per turn; every round's usage is counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from toolrun.errors import InvalidDefinition
from toolrun.gateway.completion import Turn, Usage
from toolrun.gateway.errors import InvalidRequest, ParseError, UpstreamFailed
from toolrun.gateway.fold import fold_messages
from toolrun.gateway.parse import ParsedReply, ToolCall, new_call_id, parse_reply
from toolrun.gateway.prompt import forced_name, select_tools
from toolrun.gateway.record import Recorder
from toolrun.gateway.upstreams import Upstream
from toolrun.gateway.validate import OfferedTools
from toolrun.llm.wire import parse_completion


@dataclass
class Ask:
    """What one model turn is asked with (OpenAI shapes)."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: str | dict[str, Any] | None = None
    parallel: bool = True
    options: dict[str, Any] = field(default_factory=dict)  # temperature, max_tokens, ...

    @property
    def must_call(self) -> bool:
        return bool(self.tools) and (
            self.tool_choice == "required" or forced_name(self.tool_choice) is not None
        )


async def upstream_round(
    upstream: Upstream, body: dict[str, Any], usage: Usage
) -> tuple[dict[str, Any], Mapping[str, Any]]:
    """One ``/chat/completions`` request: ``(the first choice, the whole reply)``."""
    raw = await upstream.client.post_json("/chat/completions", body)
    try:
        parse_completion(raw)  # the shape, checked once
    except ValueError as exc:
        raise UpstreamFailed(
            f"the model server answered with something that is not a chat completion: {exc}"
        ) from None
    usage.add(raw.get("usage"))
    return raw["choices"][0], raw


async def emulated_turn(
    upstream: Upstream, ask: Ask, usage: Usage, recorder: Recorder | None = None
) -> Turn:
    """The model's answer with its calls read from text; see the module docstring."""
    try:
        offered = OfferedTools.from_openai(select_tools(ask.tools, ask.tool_choice))
        messages = fold_messages(
            ask.messages, ask.tools, tool_choice=ask.tool_choice, parallel_tool_calls=ask.parallel
        )
    except InvalidDefinition as exc:
        raise InvalidRequest(exc.message, param="tools", code="invalid_value") from None
    repaired = reprompted = False
    while True:
        body = {**ask.options, "model": upstream.model, "messages": messages}
        choice, raw = await upstream_round(upstream, body, usage)
        message = choice.get("message") or {}
        text = _text(message.get("content"))
        try:
            parsed = await _read(text, offered, ask.parallel, recorder)
        except ParseError as error:
            if repaired:
                raise UpstreamFailed(
                    f"the model's tool call could not be used, also after a repair round: "
                    f"{error.message}",
                    code="invalid_tool_call",
                ) from None
            repaired = True
            messages = [*messages, _said(text), _user(_repair(error))]
            continue
        if not parsed.calls and ask.must_call and offered:
            if reprompted:
                raise UpstreamFailed(
                    "the model answered without calling a function although tool_choice "
                    f"requires {_wanted(ask)} (asked twice)",
                    code="tool_call_missing",
                )
            reprompted = True
            messages = [*messages, _said(text), _user(_insist(ask, offered))]
            continue
        break
    reasoning = [message.get("reasoning_content"), message.get("reasoning"), parsed.reasoning]
    joined = "\n\n".join(r for r in reasoning if isinstance(r, str) and r.strip())
    finish = choice.get("finish_reason")
    return Turn(
        content=parsed.content,
        tool_calls=tuple(call.to_openai() for call in parsed.calls),
        reasoning=joined or None,
        finish_reason=finish if finish in ("stop", "length", "content_filter") else "stop",
        system_fingerprint=raw.get("system_fingerprint"),
    )


async def _read(
    text: str, offered: OfferedTools, parallel: bool, recorder: Recorder | None
) -> ParsedReply:
    try:
        return parse_reply(text, offered, parallel=parallel)
    except ParseError as error:
        if error.code is None or recorder is None or not recorder.available:
            raise
        calls = await recorder.record(error.code, offered, parallel=parallel)
        entries = tuple(_call(name, arguments) for name, arguments in calls)
        plain = parse_reply(text, None)  # the reasoning and the prose around the code
        content = plain.content
        if content is not None and error.code.strip() in content:
            content = content.replace(error.code.strip(), "").strip() or None
        return ParsedReply(entries, _strip_fences(content), plain.reasoning)


def _call(name: str, arguments: dict[str, Any]) -> ToolCall:
    return ToolCall(new_call_id(), name, arguments)


def _strip_fences(content: str | None) -> str | None:
    if content is None:
        return None
    lines = [line for line in content.split("\n") if not line.strip().startswith("```")]
    return "\n".join(lines).strip() or None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return ""


def _said(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def _repair(error: ParseError) -> str:
    return (
        f"Your function call could not be used: {error.message}\n\nReply again: one ```python "
        "block with only the corrected calls of the functions above, one per line, with "
        "literal arguments (or plain text if no function is needed)."
    )


def _wanted(ask: Ask) -> str:
    name = forced_name(ask.tool_choice)
    return f"a call of {name}" if name else "a function call"


def _insist(ask: Ask, offered: OfferedTools) -> str:
    tool = offered.lookup(forced_name(ask.tool_choice) or "")
    what = f"call {tool.python_name}" if tool else "call at least one of the functions"
    return (
        f"You must {what} now. Reply with one ```python block that contains only the call, "
        "with literal arguments."
    )
