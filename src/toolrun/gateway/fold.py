"""A conversation for a model without tool support: OpenAI ``messages`` folded into plain turns.

:func:`fold_messages` keeps ``system``/``user``/``assistant`` roles only: the tool prompt
(:func:`~toolrun.gateway.prompt.system_prompt`) joins the first system message (``developer``
messages count as system), an assistant's ``tool_calls`` become the Python calls they stand
for in a fenced block, and ``tool`` results become a user message
``Result of name(args) [call_id]: ...`` (consecutive results in one message, merged with a
user turn beside them so the roles keep alternating).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from toolrun.gateway.prompt import call_source, system_prompt
from toolrun.gateway.validate import OfferedTools


def fold_messages(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    tool_choice: Any = None,
    parallel_tool_calls: bool = True,
) -> list[dict[str, Any]]:
    """``messages`` for a model without tool support: ``system``/``user``/``assistant`` only."""
    offered = OfferedTools.from_openai(tools or [])
    folded: list[dict[str, Any]] = []
    calls: dict[str, str] = {}  # call id -> the call's Python source
    results: list[str] = []
    for message in messages:
        role = message.get("role")
        if role in ("tool", "function"):
            results.append(_result(message, calls))
            continue
        if results:
            _append_user(folded, _results_text(results))
            results = []
        if role == "assistant" and message.get("tool_calls"):
            folded.append(_assistant(message, offered, calls))
        elif role == "user":
            _append_user(folded, message.get("content") or "")
        else:
            kind = "system" if role in ("system", "developer") else str(role)
            folded.append({"role": kind, "content": message.get("content") or ""})
    if results:
        _append_user(folded, _results_text(results))
    prompt = system_prompt(tools, tool_choice=tool_choice, parallel_tool_calls=parallel_tool_calls)
    if prompt:
        _add_system(folded, prompt)
    return folded


def _assistant(
    message: Mapping[str, Any], offered: OfferedTools, calls: dict[str, str]
) -> dict[str, Any]:
    lines = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        name = str(function.get("name") or "")
        raw = function.get("arguments") or "{}"
        try:
            arguments = json.loads(raw) if isinstance(raw, str) else raw
            source = call_source(name, arguments, offered.lookup(name))
        except (ValueError, TypeError, AttributeError):
            source = call_source(name, {}, offered.lookup(name)) + "  # arguments not readable"
        calls[str(call.get("id") or "")] = source
        lines.append(source)
    text = _text(message.get("content"))
    block = "```python\n" + "\n".join(lines) + "\n```"
    return {"role": "assistant", "content": f"{text}\n\n{block}" if text else block}


def _result(message: Mapping[str, Any], calls: Mapping[str, str]) -> str:
    call_id = str(message.get("tool_call_id") or "")
    call = calls.get(call_id) or message.get("name") or "a function call"
    label = f"{call} [{call_id}]" if call_id else str(call)
    return f"Result of {label}:\n{_text(message.get('content'))}"


def _results_text(results: list[str]) -> str:
    closing = "Use these results to answer, or call more functions if needed."
    return "\n\n".join([*results, closing])


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") if isinstance(p, Mapping) else str(p) for p in content]
        if all(isinstance(p, Mapping) and p.get("type") == "text" for p in content):
            return "\n".join(str(p) for p in parts)
    return json.dumps(content, ensure_ascii=False)


def _append_user(folded: list[dict[str, Any]], content: Any) -> None:
    """A user message, merged into the previous one when that is a user message too (tool
    results next to a user turn), so the roles keep alternating."""
    if folded and folded[-1]["role"] == "user":
        previous = folded[-1]["content"]
        if isinstance(previous, str) and isinstance(content, str):
            folded[-1]["content"] = f"{previous}\n\n{content}" if previous else content
            return
        folded[-1]["content"] = _parts(previous) + _parts(content)
        return
    folded.append({"role": "user", "content": content})


def _parts(content: Any) -> list[Any]:
    return list(content) if isinstance(content, list) else [{"type": "text", "text": str(content)}]


def _add_system(folded: list[dict[str, Any]], prompt: str) -> None:
    for message in folded:
        if message["role"] == "system":
            text = _text(message["content"])
            message["content"] = f"{text}\n\n{prompt}" if text else prompt
            return
    folded.insert(0, {"role": "system", "content": prompt})
