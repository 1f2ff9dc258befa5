"""One native model turn: ``tools`` passed through, the upstream's answer made correct.

Servers that support tools still get details wrong; :func:`native_turn` answers the client in
OpenAI's shape regardless:

- every call gets an id (``call_...``), unique within the turn, and ``type: "function"``;
- ``arguments`` is always JSON text (some servers send the object itself);
- ``<think>`` blocks left in the content become ``reasoning_content``, as does a server's own
  ``reasoning_content`` or ``reasoning`` field;
- ``finish_reason`` is ``tool_calls`` whenever there are calls;
- ``tool_choice`` is honoured even by servers that ignore it: calls in a ``none`` turn are
  dropped, a ``required`` or named turn without the call is asked again once (then a 502),
  and with ``parallel_tool_calls: false`` only the first call is kept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from toolrun.gateway.completion import Turn, Usage
from toolrun.gateway.emulate import Ask, upstream_round
from toolrun.gateway.errors import UpstreamFailed
from toolrun.gateway.find import split_reasoning
from toolrun.gateway.parse import new_call_id
from toolrun.gateway.prompt import forced_name
from toolrun.gateway.upstreams import Upstream

_KEPT = ("refusal", "annotations", "audio")


def native_body(upstream: Upstream, ask: Ask) -> dict[str, Any]:
    """The upstream request: the client's options and messages, tools as given."""
    body: dict[str, Any] = {**ask.options, "model": upstream.model, "messages": ask.messages}
    if ask.tools:
        body["tools"] = ask.tools
        if ask.tool_choice is not None:
            body["tool_choice"] = ask.tool_choice
        if not ask.parallel:
            body["parallel_tool_calls"] = False
    return body


async def native_turn(upstream: Upstream, ask: Ask, usage: Usage) -> Turn:
    """The upstream's own answer, corrected; see the module docstring."""
    body = native_body(upstream, ask)
    for attempt in (1, 2):
        choice, raw = await upstream_round(upstream, body, usage)
        turn = turn_from_choice(choice, raw, ask)
        if turn.tool_calls or not ask.must_call:
            return turn
        if attempt == 1:
            body = {**body, "messages": [*ask.messages, *_insist(turn, ask)]}
    wanted = forced_name(ask.tool_choice) or "a function"
    raise UpstreamFailed(
        f"the model answered without calling {wanted} although tool_choice requires it "
        "(asked twice)",
        code="tool_call_missing",
    )


def turn_from_choice(choice: Mapping[str, Any], raw: Mapping[str, Any], ask: Ask) -> Turn:
    """A :class:`Turn` from an upstream ``choices[0]``, corrected for ``ask``."""
    message = choice.get("message") or {}
    content = message.get("content")
    reasoning = [message.get("reasoning_content"), message.get("reasoning")]
    if isinstance(content, str) and "<" in content:
        visible, thought = split_reasoning(content)
        if thought:
            content = visible.strip() or None
            reasoning.append(thought)
    calls = normalize_calls(message.get("tool_calls") or [])
    if not calls and isinstance(message.get("function_call"), Mapping):
        calls = normalize_calls([{"function": message["function_call"]}])
    calls = honour(calls, ask)
    joined = "\n\n".join(r for r in reasoning if isinstance(r, str) and r.strip())
    finish = choice.get("finish_reason")
    return Turn(
        content=content if isinstance(content, str) else None,
        tool_calls=tuple(calls),
        reasoning=joined or None,
        finish_reason=finish if isinstance(finish, str) and finish != "tool_calls" else "stop",
        system_fingerprint=raw.get("system_fingerprint"),
        extra={k: message[k] for k in _KEPT if message.get(k) is not None}
        | ({"logprobs": choice["logprobs"]} if choice.get("logprobs") else {}),
    )


def normalize_calls(entries: Any) -> list[dict[str, Any]]:
    """``tool_calls`` entries with ids (unique), ``type`` and ``arguments`` as JSON text."""
    calls: list[dict[str, Any]] = []
    seen: set[str] = set()
    for entry in entries if isinstance(entries, list) else []:
        function = entry.get("function") if isinstance(entry, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            continue
        arguments = function.get("arguments")
        if arguments is None or arguments == "":
            arguments = "{}"
        elif not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        call_id = entry.get("id")
        if not isinstance(call_id, str) or not call_id or call_id in seen:
            call_id = new_call_id()
        seen.add(call_id)
        calls.append(
            {
                "id": call_id,
                "type": "function",
                "function": {"name": function["name"], "arguments": arguments},
            }
        )
    return calls


def honour(calls: list[dict[str, Any]], ask: Ask) -> list[dict[str, Any]]:
    """The calls ``tool_choice`` and ``parallel_tool_calls`` allow."""
    if ask.tool_choice == "none" or not ask.tools:
        return []
    forced = forced_name(ask.tool_choice)
    if forced is not None:
        calls = [c for c in calls if c["function"]["name"] == forced]
    return calls[:1] if not ask.parallel else calls


def _insist(turn: Turn, ask: Ask) -> list[dict[str, Any]]:
    forced = forced_name(ask.tool_choice)
    what = f"the function {forced}" if forced else "at least one of the functions"
    said = {"role": "assistant", "content": turn.content or ""}
    return [said, {"role": "user", "content": f"You must call {what} now."}]
