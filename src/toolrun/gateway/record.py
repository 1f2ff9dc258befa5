"""Calls of tool code that loops or branches, collected by running it in the sandbox tier.

A reply such as ``for city in ["Paris", "Rome"]: get_weather(city)`` cannot be read as a list of
calls without running it. When the sandbox tier is there, :class:`Recorder` runs that code in a
fresh sandbox (no network, no host files, a short time limit) where every offered tool is a
*recording stub*: calling it records the call and returns ``None``; nothing is executed. The
calls are then checked against their schemas like parsed ones. Code that needs a call's result
fails there and is answered with the error (a repair round), never guessed at.
"""

from __future__ import annotations

import functools
from typing import Any

from toolrun.config import SandboxSettings
from toolrun.errors import CallError
from toolrun.execution.runtimes.sandboxed import sandbox_limits
from toolrun.gateway.errors import ParseError
from toolrun.gateway.prompt import render_tools
from toolrun.gateway.validate import OfferedTools
from toolrun.sandbox.launcher import Sandbox, SandboxRequest
from toolrun.sandbox.probe import probe_with

MODULE = "toolrun_tools"
MAX_CALLS = 32
_PRELUDE = """def _model(fields):
    def build(**values):
        return {fields.get(k, k): v for k, v in values.items()}
    return build
"""


class Recorder:
    """Runs tool code with recording stubs; see the module docstring."""

    def __init__(self, settings: SandboxSettings, *, timeout_s: float = 5.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s

    @functools.cached_property
    def available(self) -> bool:
        """Whether the bubblewrap sandbox is there (probed once); never a weaker fallback."""
        report = probe_with(self.settings)
        return bool(report.available and report.host is not None and report.host.bwrap)

    async def record(
        self, code: str, offered: OfferedTools, *, parallel: bool = True
    ) -> list[tuple[str, dict[str, Any]]]:
        """The checked calls ``code`` makes: ``(tool name, JSON arguments)``; raises
        :class:`ParseError` when the code fails or a call is invalid."""
        report = probe_with(self.settings)
        if not self.available or report.host is None:
            raise ParseError("tool code with loops or conditions needs the sandbox tier")
        stubs = {
            tool.python_name: {"tool": tool.name, "params": list(tool.python_params.values())}
            for tool in offered.values()
        }
        models = render_tools(offered).models
        builders = [f"{name} = _model({dict(spec.fields)!r})" for name, spec in models.items()]
        source = "\n".join([f"from {MODULE} import {', '.join(stubs)}", _PRELUDE, *builders, code])
        recorded: list[tuple[str, dict[str, Any]]] = []

        async def on_call(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
            if len(recorded) >= MAX_CALLS:
                return {"error": f"more than {MAX_CALLS} calls"}
            recorded.append((tool, arguments))
            return {"value": None}

        request = SandboxRequest(
            mode="script",
            limits=sandbox_limits(self.settings, self.timeout_s),
            source=source,
            env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"},
            stubs={MODULE: stubs},
            on_call=on_call,
        )
        try:
            outcome = await Sandbox(report.host).run(request)
        except Exception as exc:  # the sandbox could not start: the model is told, not a 500
            raise ParseError(f"tool code with loops or conditions could not be run: {exc}") from exc
        if outcome.status != "ok":
            problem = outcome.error.get("message") if outcome.error else outcome.reason
            raise ParseError(f"the tool code failed when run to collect its calls: {problem}")
        if not recorded:
            raise ParseError("the tool code ran but called no tool")
        if len(recorded) > 1 and not parallel:
            raise ParseError(
                f"parallel tool calls are disabled, but the code makes {len(recorded)} calls"
            )
        checked = []
        for name, arguments in recorded:
            try:
                checked.append(offered.check(name, (), arguments))
            except CallError as error:
                raise ParseError(f"{error.message}", detail=error.detail) from None
        return checked
