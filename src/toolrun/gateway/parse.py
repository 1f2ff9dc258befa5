"""Tool calls, prose and reasoning out of the reply of a model that was shown Python stubs.

:func:`parse_reply` reads a reply in four steps.

1. **Reasoning.** ``<think>``, ``<thinking>`` and ``<reasoning>`` blocks become ``reasoning``.
   A closing tag with no opening one makes everything before it reasoning (chat templates
   that open the block in the prompt); an opening tag never closed makes the rest of the reply
   reasoning, with no calls in it (a truncated reply).
2. **Code.** Tool tags (``<tool_call>``, ``<function=name>{...}</function>``,
   ``<|python_tag|>``, ``[TOOL_CALLS]``, ``functools[...]``), fenced blocks (``python``,
   ``py``, ``json``, ``tool_code`` or untagged; other languages are prose), and bare lines that
   begin with a call of an offered tool (after a label such as ``Action:``) or with a JSON
   object, with the literal assignments just above them; a line that is nothing but a call of
   another name that is no Python builtin is code too (an unknown tool).
3. **Calls.** Code is parsed with :mod:`ast`; nothing is ever evaluated but literals. The
   rules, in order:

   - ``tool(...)``, ``functions.tool(...)``, ``x = tool(...)`` and ``print(tool(...))`` are
     calls of ``tool``; ``[f(...), g(...)]`` is two calls. Arguments are literals (strings,
     numbers, ``True``/``true``, ``None``/``null``, lists, tuples, sets, dicts), names assigned
     a literal earlier in the reply, or a generated model built with keywords
     (``Address(city="Paris")`` is ``{"city": "Paris"}``).
   - JSON-like call objects — ``{"name", "arguments"|"parameters"}``, OpenAI's
     ``{"function": {...}}``, lists of them — are calls too.
   - ``print(...)`` of anything but a call is ignored, as are imports, ``pass``, bare strings
     and literals that are no call object (a result the model imagined); a name holding a
     call's result may be printed but not passed on (its value is not known until the call
     has run).
   - Anything else in tool code — another function, an attribute, an operator, a loop, a
     ``def`` — is a :class:`ParseError`, never a call.

   A fenced block is tool code when it calls an offered tool, or when it holds only calls of
   names that are not Python builtins (an unknown tool is then an error); other code (an
   answer that *is* a program) stays in the content, as does prose that only names a tool.
4. **Checks.** Every call is bound and validated against its schema
   (:meth:`OfferedTools.check`) and given an id ``call_<24 hex>``. Any failure fails the whole
   reply with a :class:`ParseError` naming the line: never a partial list of calls.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from toolrun.gateway.errors import ParseError
from toolrun.gateway.find import SPECIAL, find_segments, patterns_for, split_reasoning
from toolrun.gateway.read import Reader
from toolrun.gateway.validate import OfferedTools

__all__ = ["ParseError", "ParsedReply", "ToolCall", "new_call_id", "parse_reply"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call: its id, the original tool name and the validated JSON arguments."""

    id: str
    name: str
    arguments: dict[str, Any]

    def to_openai(self) -> dict[str, Any]:
        """The call as an OpenAI ``tool_calls`` entry (arguments as a JSON string)."""
        arguments = json.dumps(self.arguments, ensure_ascii=False)
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": arguments},
        }


@dataclass(frozen=True, slots=True)
class ParsedReply:
    """A reply read: its calls, the prose to show (``None``: none) and the reasoning."""

    calls: tuple[ToolCall, ...]
    content: str | None
    reasoning: str | None


def new_call_id() -> str:
    """A fresh OpenAI-style call id, ``call_`` and 24 hex digits."""
    return "call_" + secrets.token_hex(12)


def parse_reply(
    reply: str,
    tools: OfferedTools | Sequence[Mapping[str, Any]] | None,
    *,
    parallel: bool = True,
    new_id: Callable[[], str] = new_call_id,
) -> ParsedReply:
    """The calls, content and reasoning of ``reply`` for the offered ``tools``; raises
    :class:`ParseError`. With ``parallel=False`` more than one call is an error."""
    offered = tools if isinstance(tools, OfferedTools) else OfferedTools.from_openai(tools)
    text, reasoning = split_reasoning(SPECIAL.sub("", reply.replace("\r\n", "\n")))
    if not offered:
        return ParsedReply((), _tidy(text), reasoning)
    reader = Reader(offered)
    try:
        kept = [
            (s.start, s.end) for s in find_segments(text, patterns_for(offered)) if reader.read(s)
        ]
        checked = reader.checked()
    except RecursionError:
        raise ParseError("the reply nests too deeply to be read") from None
    calls: list[ToolCall] = []
    ids: set[str] = set()
    for name, arguments in checked:
        call_id = new_id()
        while call_id in ids:
            call_id = new_id()
        ids.add(call_id)
        calls.append(ToolCall(call_id, name, arguments))
    if len(calls) > 1 and not parallel:
        raise ParseError(
            f"parallel tool calls are disabled, but the reply makes {len(calls)} calls"
        )
    return ParsedReply(tuple(calls), _tidy(_cut(text, kept)), reasoning)


def _cut(text: str, spans: list[tuple[int, int]]) -> str:
    pieces, position = [], 0
    for start, end in sorted(spans):
        pieces.append(text[position:start] + "\n")
        position = max(position, end)
    return "".join(pieces) + text[position:]


def _tidy(text: str) -> str | None:
    lines = [line.rstrip() for line in text.split("\n")]
    tidy = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return tidy or None
