"""The LLM planner of ``POST /execute``: a model chooses one of the ranked candidates (or
none) and fills its arguments.

Native tool calling first (the candidates as OpenAI ``tools``, ``tool_choice: "auto"``). A
server that refuses ``tools`` (HTTP 400 naming them) is asked for a JSON object instead, from
then on; a model that answers a native request in prose is asked once more in that JSON
form. Arguments are checked against the tool's schema; an invalid call or a name that is not
among the candidates gets exactly one repair round that shows the model the problem. What is
still invalid after it never runs: the decision says what was missing or wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from toolrun.llm.base import ChatBackend
from toolrun.llm.errors import LLMRejected
from toolrun.llm.wire import AssistantMessage, Message, tool_result_message
from toolrun.nl.sessions import Turn
from toolrun.registry.formats import openai_name, to_openai
from toolrun.registry.schema import argument_errors
from toolrun.registry.tool import Tool

Mode = Literal["tools", "json"]
HISTORY_TURNS = 5
_MAX_SCAN = 20_000
_FENCE = re.compile(r"```[A-Za-z]*\s*\n?(.*?)```", re.S)

RULES = """\
You route one request of a user to a function, or to none.
- Choose the one function below that does what the request asks, and fill its arguments.
- Take every value from the request or the session so far; never invent a value for a
  required parameter that was not given: leave it out.
- When no function does what the request asks, choose none and say why in one sentence."""
NATIVE = RULES + "\n- To choose one, call it; to choose none, call nothing and answer in text."
JSON_FORMAT = """\
Answer with one JSON object and nothing else:
{"function": "<name>", "arguments": {...}} to call a function, or
{"function": null, "reason": "<why none fits>"} when none does."""
NATIVE_TEXT_RETRY = "Answer in the JSON form now."


@dataclass
class Decision:
    """What the model decided: a tool with valid ``arguments``; the same with ``missing``
    required names; no tool (``reason``); or ``error`` (nothing may run)."""

    tool: Tool | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    reason: str | None = None
    error: str | None = None
    mode: Mode = "tools"
    requests: int = 0
    repaired: bool = False


@dataclass
class _Attempt:
    """One reply read as a call: ``problem`` is set when it cannot run as it is."""

    name: str | None
    tool: Tool | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None
    missing: list[str] = field(default_factory=list)
    only_missing: bool = False  # every problem is a required argument left out
    reason: str | None = None
    call_id: str | None = None


def offered_names(tools: Sequence[Tool]) -> dict[str, Tool]:
    """OpenAI-safe, unique names for the candidates: the tool name, or the id when two
    versions of one name are offered."""
    counts: dict[str, int] = {}
    for tool in tools:
        counts[tool.name] = counts.get(tool.name, 0) + 1
    names: dict[str, Tool] = {}
    for tool in tools:
        base = openai_name(tool.name if counts[tool.name] == 1 else tool.id)
        name, n = base, 2
        while name in names:
            name, n = openai_name(f"{base}_{n}"), n + 1
        names[name] = tool
    return names


def find_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text``: inside a code fence, else bare among prose."""
    text = text[:_MAX_SCAN]
    decoder = json.JSONDecoder()
    for chunk in [*(m.group(1) for m in _FENCE.finditer(text)), text]:
        for start in (i for i, ch in enumerate(chunk) if ch == "{"):
            try:
                found, _ = decoder.raw_decode(chunk, start)
            except ValueError:
                continue
            if isinstance(found, dict):
                return found
    return None


def read_choice(found: Mapping[str, Any]) -> tuple[str | None, Any, str | None] | None:
    """``(name, arguments, reason)`` from a JSON-form answer, ``None`` if it is not one.
    Accepts ``function``/``name``/``tool`` and ``arguments``/``parameters``/``args``, and
    the OpenAI call shape ``{"function": {"name", "arguments"}}``."""
    inner = found.get("function")
    if isinstance(inner, Mapping):
        found = {**found, **inner, "function": inner.get("name")}
    key = next((k for k in ("function", "name", "tool") if k in found), None)
    if key is None:
        return None
    name = found[key]
    if name is not None and not isinstance(name, str):
        return None
    arguments: Any = next((found[k] for k in ("arguments", "parameters", "args") if k in found), {})
    reason = found.get("reason")
    return (name or None), arguments, str(reason) if reason is not None else None


def summarize(history: Sequence[Turn]) -> str:
    """The session's last turns for the model: prompt, function, arguments, status."""
    lines = []
    for turn in history[-HISTORY_TURNS:]:
        call = "no function"
        if turn.tool_id:
            call = f"{turn.tool_id}({json.dumps(turn.arguments or {}, default=str)})"
        lines.append(f"- {turn.prompt!r} -> {call} [{turn.status}]")
    return "\n".join(lines)


class LLMPlanner:
    """Asks a :class:`~toolrun.llm.base.ChatBackend` to choose among candidates."""

    def __init__(self, backend: ChatBackend, *, native_tools: bool = True) -> None:
        self.backend = backend
        # False once the server refused ``tools``: the JSON form from then on.
        self.native_tools = native_tools

    async def aclose(self) -> None:
        await self.backend.aclose()

    async def decide(
        self, prompt: str, history: Sequence[Turn], candidates: Sequence[Tool]
    ) -> Decision:
        """The model's choice among ``candidates``; raises
        :class:`~toolrun.llm.errors.LLMError` when the model cannot be asked."""
        if not candidates:
            return Decision(reason="no tool is registered that matches the request")
        names = offered_names(candidates)
        session = summarize(history)
        decision = Decision(mode="tools" if self.native_tools else "json")
        if self.native_tools:
            messages = self._messages(NATIVE, session, prompt)
            try:
                reply = await self._ask(decision, messages, names)
            except LLMRejected as exc:
                if exc.status != 400 or "tool" not in (exc.upstream_message or "").lower():
                    raise
                self.native_tools = False
                decision.mode = "json"
            else:
                attempt = self._read_native(reply, names)
                if attempt is not None:
                    return await self._settle(decision, attempt, messages, reply, names)
                decision.mode = "json"  # prose: ask once more, in the JSON form
        messages = self._messages(self._json_rules(names), session, prompt)
        reply = await self._ask(decision, messages, None)
        attempt = self._read_json(reply, names)
        return await self._settle(decision, attempt, messages, reply, names)

    # -- one round ------------------------------------------------------------------------

    def _messages(self, rules: str, session: str, prompt: str) -> list[Message]:
        system = rules + (f"\n\nThe session so far:\n{session}" if session else "")
        return [{"role": "system", "content": system}, {"role": "user", "content": prompt}]

    def _json_rules(self, names: Mapping[str, Tool]) -> str:
        listing = [
            f"- {name}: {tool.description or '(no description)'}\n"
            f"  parameters: {json.dumps(tool.input_schema, separators=(',', ':'))}"
            for name, tool in names.items()
        ]
        return f"{RULES}\n\nThe functions:\n" + "\n".join(listing) + "\n\n" + JSON_FORMAT

    async def _ask(
        self, decision: Decision, messages: list[Message], names: Mapping[str, Tool] | None
    ) -> AssistantMessage:
        decision.requests += 1
        if names is None:
            return await self.backend.chat(messages, temperature=0)
        tools = [to_openai(tool, name) for name, tool in names.items()]
        return await self.backend.chat(messages, tools=tools, tool_choice="auto", temperature=0)

    def _read_native(self, reply: AssistantMessage, names: Mapping[str, Tool]) -> _Attempt | None:
        """The first call of a native reply; a text that holds the JSON form; else ``None``."""
        if reply.tool_calls:
            call = reply.tool_calls[0]
            return self._check(call.name, call.arguments, names, call.id)
        found = find_json_object(reply.content or "")
        choice = read_choice(found) if found is not None else None
        if choice is None:
            return None
        name, arguments, reason = choice
        return self._check(name, arguments, names) if name else _Attempt(None, reason=reason)

    def _read_json(self, reply: AssistantMessage, names: Mapping[str, Tool]) -> _Attempt:
        found = find_json_object(reply.content or "")
        choice = read_choice(found) if found is not None else None
        if choice is None:
            as_code = self._read_python(reply, names)
            if as_code is not None:
                return as_code
            text = " ".join((reply.content or "").split())
            excerpt = text if len(text) <= 200 else text[:197] + "..."
            return _Attempt(None, problem=f"no JSON object of the asked form in {excerpt!r}")
        name, arguments, reason = choice
        return self._check(name, arguments, names) if name else _Attempt(None, reason=reason)

    def _read_python(self, reply: AssistantMessage, names: Mapping[str, Tool]) -> _Attempt | None:
        """A model asked for JSON that answered with a Python call of one of the tools (small
        models often do): read it with the gateway's parser (ast, literals only). ``None``
        when the reply holds no call."""
        from toolrun.gateway.errors import ParseError
        from toolrun.gateway.parse import parse_reply

        offered = [
            {"type": "function", "function": {"name": n, "parameters": t.input_schema}}
            for n, t in names.items()
        ]
        try:
            parsed = parse_reply(reply.content or "", offered, parallel=False)
        except ParseError as exc:
            return _Attempt(None, problem=f"the call in the answer cannot be used: {exc}")
        if not parsed.calls:
            return None
        call = parsed.calls[0]
        return self._check(call.name, call.arguments, names)

    # -- checking and repairing -------------------------------------------------------------

    def _lookup(self, name: str, names: Mapping[str, Tool]) -> Tool | None:
        if name in names:
            return names[name]
        by_id = [t for t in names.values() if name in (t.id, t.name)]
        if len(by_id) == 1:
            return by_id[0]
        folded = {n.lower(): t for n, t in names.items()}
        return folded.get(openai_name(name).lower())

    def _check(
        self, name: str, arguments: Any, names: Mapping[str, Tool], call_id: str | None = None
    ) -> _Attempt:
        attempt = _Attempt(name, call_id=call_id)
        attempt.tool = self._lookup(name, names)
        if attempt.tool is None:
            offered = ", ".join(names)
            attempt.problem = f"there is no function {name!r}; the functions offered: {offered}"
            return attempt
        if isinstance(arguments, str):  # a native call's arguments are JSON text
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError as exc:
                attempt.problem = f"the arguments are not valid JSON ({exc})"
                return attempt
        if not isinstance(arguments, dict):
            attempt.problem = f"the arguments must be an object, not {type(arguments).__name__}"
            return attempt
        attempt.arguments = arguments
        tool = attempt.tool
        errors = argument_errors(tool.input_schema, {**tool.default_params, **arguments})
        if not errors:
            return attempt
        required = tool.input_schema.get("required") or []
        given = {**tool.default_params, **arguments}
        attempt.missing = [r for r in required if isinstance(r, str) and r not in given]
        attempt.only_missing = all(e["validator"] == "required" for e in errors)
        if attempt.only_missing:
            attempt.problem = "required arguments are missing: " + ", ".join(attempt.missing)
        else:
            attempt.problem = "; ".join(f"{e['path'] or '(root)'}: {e['message']}" for e in errors)
        return attempt

    async def _settle(
        self,
        decision: Decision,
        attempt: _Attempt,
        messages: list[Message],
        reply: AssistantMessage,
        names: Mapping[str, Tool],
    ) -> Decision:
        """Accept ``attempt``, or repair it once and take what comes back."""
        if attempt.problem is None:
            return self._final(decision, attempt, names)
        decision.repaired = True
        problem = attempt.problem
        note = (
            f"Your call to {attempt.name} cannot run: {problem}. Call a function again with "
            "corrected arguments; take values only from the request, and leave out what it "
            "does not give."
        )
        if decision.mode == "tools" and reply.tool_calls:
            retry = [*messages, reply.to_message(), tool_result_message(attempt.call_id, note)]
            second = await self._ask(decision, retry, names)
            again = self._read_native(second, names)
        else:
            text = f"{note} {JSON_FORMAT}" if attempt.name else f"{problem}. {JSON_FORMAT}"
            retry = [*messages, reply.to_message(), {"role": "user", "content": text}]
            second = await self._ask(decision, retry, None)
            again = self._read_json(second, names)
        if again is None or (again.name is None and again.problem and attempt.name):
            again = attempt  # no call in the repair round: the first call stands
        return self._final(decision, again, names)

    def _final(self, decision: Decision, attempt: _Attempt, names: Mapping[str, Tool]) -> Decision:
        decision.tool, decision.arguments = attempt.tool, attempt.arguments
        if attempt.problem is None:
            if attempt.tool is None:
                decision.reason = attempt.reason or "the model found no function that fits"
        elif attempt.only_missing:
            decision.missing = attempt.missing
        elif attempt.name is None:
            decision.error = (
                f"the model's answer could not be read: {attempt.problem}; nothing was run"
            )
        elif attempt.tool is None:
            decision.error = (
                f"the model chose {attempt.name!r}, which is not among the candidate tools "
                f"({', '.join(t.id for t in names.values())}); nothing was run"
            )
        else:
            decision.error = (
                f"the model's call to {attempt.tool.id} is still invalid after one repair "
                f"round: {attempt.problem}; nothing was run"
            )
        return decision
