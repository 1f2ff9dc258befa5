"""Registry tools the gateway runs itself: ``toolrun_tools`` in the request body.

``{"toolrun_tools": ["weather_lookup"]}`` (``extra_body`` in the official client) offers those
registry tools to the model beside the client's own ``tools``. :func:`run_loop` asks the model;
calls of registry tools are run through the executor (each a job, with its tool's tier, limits
and retries; many calls of one turn at once) and answered as ``tool`` messages, and the model
is asked again, until it answers without them or ``gateway_max_steps`` rounds have run (then it
is asked once more with ``tool_choice: "none"``). Calls of the client's tools end the loop and
go back to the client as ``tool_calls``; when a turn calls both kinds, the registry calls run
first. Every registry call is in the trace (``toolrun_trace`` of the answer): step, call id,
tool, arguments, job id, status and result.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from toolrun.errors import ToolNotFound, ToolrunError
from toolrun.execution.jobs import Job
from toolrun.gateway.completion import Turn
from toolrun.gateway.emulate import Ask
from toolrun.gateway.errors import InvalidRequest
from toolrun.platform import Platform
from toolrun.registry.formats import openai_name, to_openai
from toolrun.registry.tool import Tool
from toolrun.response import Response

TurnFn = Callable[[Ask], Awaitable[Turn]]
_RESULT_CHARS = 16000


@dataclass
class ServerTools:
    """The registry tools offered in one request, by the function name the model sees."""

    tools: dict[str, Tool] = field(default_factory=dict)
    entries: list[dict[str, Any]] = field(default_factory=list)


async def resolve(platform: Platform, refs: Sequence[str], taken: Sequence[str]) -> ServerTools:
    """The tools ``refs`` name, as OpenAI entries; a 400 for an unknown tool or a name that
    clashes with one of the client's tools."""
    found = ServerTools()
    for ref in dict.fromkeys(refs):
        try:
            tool = await asyncio.to_thread(platform.tools.get, ref)
        except ToolNotFound:
            raise InvalidRequest(
                f"Invalid value for 'toolrun_tools': no registry tool {ref!r}.",
                param="toolrun_tools",
                code="invalid_value",
            ) from None
        name = openai_name(tool.name)
        if name in taken or name in found.tools:
            raise InvalidRequest(
                f"'toolrun_tools' offers {name!r}, a name already among the tools.",
                param="toolrun_tools",
                code="invalid_value",
            )
        found.tools[name] = tool
        found.entries.append(to_openai(tool, name))
    return found


async def run_loop(
    platform: Platform, ask: Ask, server: ServerTools, turn_fn: TurnFn, max_steps: int
) -> tuple[Turn, list[dict[str, Any]]]:
    """The final turn for the client and the trace; see the module docstring."""
    trace: list[dict[str, Any]] = []
    step = 0
    while True:
        turn = await turn_fn(ask)
        ours = [c for c in turn.tool_calls if c["function"]["name"] in server.tools]
        theirs = [c for c in turn.tool_calls if c["function"]["name"] not in server.tools]
        if not ours:
            return turn, trace
        step += 1
        results = await asyncio.gather(
            *(_run(platform, server.tools[c["function"]["name"]], c, step) for c in ours)
        )
        trace.extend(entry for entry, _ in results)
        if theirs:
            return turn.keeping(theirs), trace
        history = turn.keeping(ours).to_history()
        ask.messages = [*ask.messages, history, *(message for _, message in results)]
        if ask.tool_choice not in (None, "none"):
            ask.tool_choice = "auto"  # the client's requirement was met by this turn
        if step >= max_steps:
            ask.tool_choice = "none"
            final = await turn_fn(ask)
            return final.keeping([]), trace


async def _run(
    platform: Platform, tool: Tool, call: Mapping[str, Any], step: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run one call as a job: ``(trace entry, tool message)``."""
    started = time.perf_counter()
    entry: dict[str, Any] = {
        "step": step,
        "call_id": call["id"],
        "tool": call["function"]["name"],
        "tool_id": tool.id,
        "arguments": None,
        "job_id": None,
        "status": "rejected",
        "is_error": True,
        "result": None,
    }
    try:
        arguments = json.loads(call["function"]["arguments"] or "{}")
        if not isinstance(arguments, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        entry["error"] = f"the arguments are not a JSON object: {exc}"
        return _done(entry, started), _message(call, f"Error: {entry['error']}")
    entry["arguments"] = arguments
    try:
        job: Job = await platform.executor.invoke(tool.id, arguments)
    except ToolrunError as exc:  # refused before it was a job: invalid arguments, full queue
        entry["error"] = exc.message
        return _done(entry, started), _message(call, f"Error: {exc.message}")
    response = job.result or Response.error(job.error or f"the job ended {job.status.value}")
    entry.update(
        job_id=job.id,
        status=job.status.value,
        is_error=response.is_error,
        result=response.to_dict(),
    )
    text = response.text or json.dumps(response.to_dict(), ensure_ascii=False)
    return _done(entry, started), _message(call, f"Error: {text}" if response.is_error else text)


def _done(entry: dict[str, Any], started: float) -> dict[str, Any]:
    entry["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
    return entry


def _message(call: Mapping[str, Any], content: str) -> dict[str, Any]:
    if len(content) > _RESULT_CHARS:
        content = content[:_RESULT_CHARS] + f"... [{len(content) - _RESULT_CHARS} more characters]"
    return {"role": "tool", "tool_call_id": call["id"], "content": content}
