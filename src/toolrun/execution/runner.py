"""``ToolRunner``: one call of any tool, dispatched to the runner of its runtime kind.

Python tools run in a worker process unless the tool is trusted (``isolation="inline"``);
``code`` tools and tools whose isolation is ``sandbox`` run in the sandbox tier
(:mod:`toolrun.sandbox`); command, HTTP and container tools never run tool code in the API
process whatever their isolation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from toolrun.config import Settings
from toolrun.errors import NotExecutable
from toolrun.execution.pool import WorkerPool
from toolrun.execution.runtimes import (
    CommandRunner,
    HttpRunner,
    InlinePythonRunner,
    ProcessPythonRunner,
    RuntimeRunner,
)
from toolrun.execution.runtimes.chain import ChainRunner
from toolrun.execution.runtimes.container import ContainerRunner
from toolrun.execution.runtimes.mcp import McpRunner
from toolrun.execution.runtimes.sandboxed import SandboxRunner
from toolrun.registry.runtimes import (
    ChainRuntime,
    CodeRuntime,
    CommandRuntime,
    ContainerRuntime,
    HttpRuntime,
    McpRuntime,
    PythonRuntime,
)
from toolrun.registry.tool import Tool
from toolrun.response import Response

log = logging.getLogger(__name__)


class ToolRunner:
    """Runs tools; owns the lifecycle of its runners, the worker pool included."""

    def __init__(self, settings: Settings, pool: WorkerPool | None = None) -> None:
        self.settings = settings
        self.pool = pool or WorkerPool(
            settings.workers, extra_sys_path=[str(p) for p in settings.functions_dirs]
        )
        self.inline = InlinePythonRunner()
        self.process = ProcessPythonRunner(self.pool)
        self.command = CommandRunner()
        self.http = HttpRunner(settings)
        self.sandbox = SandboxRunner(settings)
        self.container = ContainerRunner(settings)
        self.mcp = McpRunner()
        self.chain = ChainRunner(self)  # bound to its executor's CallPreparer by the executor
        self._runners: tuple[RuntimeRunner, ...] = (
            self.inline,
            self.process,
            self.command,
            self.http,
            self.sandbox,
            self.container,
            self.mcp,
            self.chain,
        )

    async def start(self) -> None:
        for runner in self._runners:
            await runner.start()

    async def close(self) -> None:
        results = await asyncio.gather(*(r.close() for r in self._runners), return_exceptions=True)
        for runner, result in zip(self._runners, results, strict=True):
            if isinstance(result, Exception):
                log.error("closing %s failed: %s", type(runner).__name__, result)

    def runner_for(self, tool: Tool) -> RuntimeRunner:
        runtime = tool.runtime
        if runtime is None:
            raise NotExecutable(
                f"tool {tool.id!r} has no runtime, so it cannot be called; "
                "give it a python, command or http runtime"
            )
        isolation = tool.isolation
        if isinstance(runtime, CodeRuntime):
            return self.sandbox  # code came over the API: the sandbox tier, whatever else
        if isinstance(runtime, PythonRuntime):
            if isolation == "sandbox":
                return self.sandbox  # which refuses it, saying why
            return self.inline if isolation == "inline" else self.process
        if isinstance(runtime, CommandRuntime):
            return self.sandbox if isolation == "sandbox" else self.command
        if isinstance(runtime, HttpRuntime):
            return self.http
        if isinstance(runtime, ContainerRuntime):
            return self.container
        if isinstance(runtime, McpRuntime):
            return self.mcp  # a remote server (URL) or the operator's stdio server
        if isinstance(runtime, ChainRuntime):
            return self.chain  # orchestration only: each step runs in its own tool's tier
        raise NotExecutable(f"tool {tool.id!r}: runtime kind {runtime.kind!r} cannot run here")

    async def check(self, tool: Tool) -> None:
        """Raise :class:`NotExecutable` (with the reason) if ``tool`` cannot run here: no
        runtime, or a tier this machine lacks (no sandbox, no container engine)."""
        await self.runner_for(tool).check(tool)

    def timeout_for(self, tool: Tool, timeout_s: float | None) -> float:
        """The given limit, else the tool's, else the default; never above the maximum."""
        chosen = timeout_s or tool.timeout_s or self.settings.default_timeout_s
        return min(chosen, self.settings.max_timeout_s)

    async def run(
        self,
        tool: Tool,
        arguments: dict[str, Any],
        timeout_s: float | None = None,
        *,
        on_start: Callable[[], Awaitable[None]] | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> Response:
        """One call; the tool's own failures come back as isError Responses.

        ``on_start`` is awaited when the call really starts: for a worker-process tool once a
        worker is free, for the others at once. If it raises, the call does not happen.
        ``on_progress`` receives the tool's progress reports (Python tools), on the loop."""
        runner = self.runner_for(tool)
        limit = self.timeout_for(tool, timeout_s)
        if on_start is None:
            return await runner.run_with_start_hook(
                tool, arguments, limit, None, on_progress=on_progress
            )
        started = False

        async def start_once() -> None:
            nonlocal started
            started = True
            await on_start()

        response = await runner.run_with_start_hook(
            tool, arguments, limit, start_once, on_progress=on_progress
        )
        if not started:  # a runner that answered before starting anything (a refusal): the
            await on_start()  # caller still learns the call began, so it can store the answer
        return response
