"""Running a script that calls registry tools: ``/execute``'s generated code, code actions.

The script runs in the sandbox tier (:mod:`toolrun.sandbox.launcher`, ``mode="script"``).
What it imports from the modules named in ``stubs`` are stand-in functions: calling one sends
the call to this process, which runs it through the executor as a job of its own, with that
tool's own tier, limits and retries, and hands the script the tool's value (or raises
``ToolCallError`` in the script). So the script never runs tool code, and tool code never runs
in the script's sandbox. Every inner call is recorded in the trace.

When the machine has no sandbox tier, a script the server generated itself (literal arguments
in a fixed template, :mod:`toolrun.nl.codegen`) may run in a plain worker process instead
(``allow_process=True``); untrusted scripts never do.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from toolrun.config import Settings
from toolrun.errors import NotExecutable, ToolrunError
from toolrun.execution.jobs import Job
from toolrun.execution.runtimes.sandboxed import sandbox_limits
from toolrun.registry.tool import Tool
from toolrun.response import Response
from toolrun.sandbox.launcher import Sandbox, SandboxHost, SandboxRequest
from toolrun.sandbox.probe import probe_with

Invoke = Callable[[str, dict[str, Any]], Awaitable[Job]]
Tier = Literal["sandbox", "unsandboxed", "process"]
GENERIC = "*"  # a stub taking the tool id as its first argument (toolrun.nl.client.call)


@dataclass
class TracedCall:
    """One tool call a script made."""

    tool: str
    arguments: dict[str, Any]
    status: str  # the job's final status, or "refused"
    job_id: str | None = None
    result: dict[str, Any] | None = None  # the Response, as on the wire
    error: str | None = None
    duration_ms: float = 0.0


@dataclass
class ScriptResult:
    """How a script run ended: ``ok``, or ``error``/``timeout``/``killed``/``output_limit``."""

    status: str
    tier: Tier
    output: str = ""
    error: str | None = None
    calls: list[TracedCall] = field(default_factory=list)
    wall_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "tier": self.tier,
            "output": self.output,
            "error": self.error,
            "calls": [asdict(c) for c in self.calls],
            "wall_ms": round(self.wall_ms, 3),
        }


def stub_spec(tool: Tool) -> dict[str, Any]:
    """How a tool appears inside a script: a function of its schema's parameters (required
    ones first), typed by their JSON types, documented by the tool's description."""
    schema = tool.input_schema
    properties = schema.get("properties") or {}
    types = {
        name: spec["type"]
        for name, spec in properties.items()
        if isinstance(spec, dict) and isinstance(spec.get("type"), str)
    }
    return {
        "tool": tool.id,
        "params": list(properties),
        "required": [p for p in schema.get("required") or [] if p in properties],
        "types": types,
        "open": not properties or schema.get("additionalProperties", True) is not False,
        "doc": tool.description,
    }


class ScriptRunner:
    """Runs scripts for one server; see the module docstring."""

    def __init__(self, settings: Settings, invoke: Invoke) -> None:
        self.settings = settings
        self.invoke = invoke

    def host(self, *, allow_process: bool) -> tuple[SandboxHost, Tier]:
        """Where scripts run here; :class:`NotExecutable` (422) when nowhere allowed."""
        report = probe_with(self.settings.sandbox)
        if report.available and report.host is not None:
            return report.host, "sandbox" if report.host.bwrap else "unsandboxed"
        if not allow_process:
            raise NotExecutable(
                "scripts run in the sandbox tier, which is unavailable on this server: "
                f"{report.reason}"
            )
        prefix = sys.base_prefix
        plain = SandboxHost(None, sys.executable, prefix, None, 0, None, 0)
        return plain, "process"

    async def run(
        self,
        source: str,
        stubs: Mapping[str, Mapping[str, Tool | str]],
        *,
        timeout_s: float,
        allowed: Iterable[str] = (),
        allow_process: bool = False,
    ) -> ScriptResult:
        """Run ``source`` with ``stubs`` (``{module: {name: tool}}``; the string
        :data:`GENERIC` makes ``name(tool_id, arguments)``); the script may call only the
        stubs' tools and the ids in ``allowed``."""
        host, tier = self.host(allow_process=allow_process)
        specs: dict[str, dict[str, dict[str, Any]]] = {}
        permitted = set(allowed)
        for module, functions in stubs.items():
            for name, tool in functions.items():
                if isinstance(tool, Tool):
                    specs.setdefault(module, {})[name] = stub_spec(tool)
                    permitted.add(tool.id)
                else:
                    specs.setdefault(module, {})[name] = {"tool": GENERIC, "params": []}
        trace: list[TracedCall] = []

        async def on_call(tool_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
            if tool_id not in permitted:
                trace.append(TracedCall(tool_id, arguments, "refused", error="not offered"))
                offered = ", ".join(sorted(permitted)) or "none"
                return {"error": f"tool {tool_id!r} is not offered to this script ({offered})"}
            started = time.perf_counter()
            try:
                job = await self.invoke(tool_id, arguments)
            except ToolrunError as exc:  # refused before it was a job: bad arguments, etc.
                trace.append(TracedCall(tool_id, arguments, "rejected", error=str(exc)))
                return {"error": str(exc)}
            response = job.result or Response.error(job.error or f"job ended {job.status.value}")
            call = TracedCall(
                tool_id,
                arguments,
                job.status.value,
                job_id=job.id,
                result=response.to_dict(),
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )
            trace.append(call)
            if response.is_error:
                call.error = response.text or "the tool failed"
                return {"error": call.error}
            return {"value": response.value}

        request = SandboxRequest(
            mode="script",
            limits=sandbox_limits(self.settings.sandbox, timeout_s),
            source=source,
            env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"},
            stubs=specs,
            on_call=on_call,
        )
        outcome = await Sandbox(host).run(request)
        result = ScriptResult(
            status=outcome.status,
            tier=tier,
            output=outcome.stdout.decode("utf-8", errors="replace"),
            calls=trace,
            wall_ms=outcome.wall_s * 1000,
        )
        if outcome.status != "ok":
            if outcome.error is not None:
                result.error = f"{outcome.error.get('type')}: {outcome.error.get('message')}"
                trace_text = str(outcome.error.get("trace") or "").strip()
                if trace_text:
                    result.error += "\n" + trace_text
            else:
                stderr = outcome.stderr.decode(errors="replace").strip()[-2000:]
                result.error = outcome.reason + (f"\nstderr: {stderr}" if stderr else "")
        return result
