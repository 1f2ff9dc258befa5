"""The ``chain`` runtime: a stored DAG of calls of other tools (seed 004's declarative
composition), run as one call of its own.

Each step starts as soon as the steps it refers to have finished, so independent branches run
in parallel. A step's tool is resolved and its arguments validated like any call, then run by
the same :class:`~toolrun.execution.runner.ToolRunner` (so in that tool's own tier, within its
own time limit and the chain's remaining time). The chain is one job: its steps are not jobs
of their own (a chain waiting on queued jobs could starve the dispatchers it holds); each
finished step is reported as a progress event, and the trace of steps is in the result's
structured content under ``steps``. The first failing step fails the chain and cancels the
steps still running.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from toolrun.errors import NotExecutable, ToolrunError
from toolrun.execution.runtimes.base import StartAwareRunner
from toolrun.registry.runtimes import ChainRuntime, ChainStep
from toolrun.registry.tool import Tool
from toolrun.response import Response

if TYPE_CHECKING:
    from toolrun.execution.runner import ToolRunner
    from toolrun.execution.submission import CallPreparer

MAX_DEPTH = 8  # chains calling chains
_depth: contextvars.ContextVar[int] = contextvars.ContextVar("toolrun_chain_depth", default=0)


class StepFailed(Exception):
    def __init__(self, step: ChainStep, message: str) -> None:
        super().__init__(f"step {step.id!r} ({step.tool}) failed: {message}")


def resolve(value: Any, scope: dict[str, Any]) -> Any:
    """``value`` with every ``{"$ref": path}`` replaced by what the path names in ``scope``
    (``{"input": ..., "steps": {...}}``); a path that leads nowhere is a ``KeyError``."""
    if isinstance(value, dict):
        if set(value) == {"$ref"} and isinstance(value["$ref"], str):
            return lookup(scope, value["$ref"])
        return {key: resolve(item, scope) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, scope) for item in value]
    return value


def lookup(scope: Any, path: str) -> Any:
    current = scope
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif (
            isinstance(current, list)
            and part.lstrip("-").isdigit()
            and -len(current) <= int(part) < len(current)
        ):
            current = current[int(part)]
        else:
            raise KeyError(f"$ref {path!r}: nothing at {part!r}")
    return current


class ChainRunner(StartAwareRunner):
    """Runs chains; needs the :class:`ToolRunner` it belongs to and a way to prepare calls
    (``bind``, done by the executor that owns both)."""

    def __init__(self, tools: ToolRunner) -> None:
        self.tools = tools
        self.preparer: CallPreparer | None = None

    def bind(self, preparer: CallPreparer) -> None:
        self.preparer = preparer

    async def check(self, tool: Tool) -> None:
        """Every step's tool exists and can run here (its arguments come at run time)."""
        runtime = self._runtime(tool)
        if self.preparer is None:
            raise NotExecutable(f"tool {tool.id!r}: chains cannot run in this process")
        for step in runtime.steps:
            try:
                inner = await self.preparer.callable_tool(step.tool)
                await self.tools.check(inner)
            except ToolrunError as exc:
                raise NotExecutable(f"chain {tool.id!r}, step {step.id!r}: {exc}") from None

    def _runtime(self, tool: Tool) -> ChainRuntime:
        if not isinstance(tool.runtime, ChainRuntime):
            raise NotExecutable(f"tool {tool.id!r} is not a chain")
        return tool.runtime

    async def run_with_start_hook(
        self,
        tool: Tool,
        arguments: dict[str, Any],
        timeout_s: float,
        on_start: Callable[[], Awaitable[None]] | None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> Response:
        if on_start is not None:
            await on_start()
        runtime = self._runtime(tool)
        if _depth.get() >= MAX_DEPTH:
            return Response.error(f"chains nested deeper than {MAX_DEPTH}: stopped at {tool.id}")
        token = _depth.set(_depth.get() + 1)
        try:
            return await _Run(self, runtime, arguments, timeout_s, on_progress).execute()
        finally:
            _depth.reset(token)


class _Run:
    def __init__(
        self,
        runner: ChainRunner,
        runtime: ChainRuntime,
        arguments: dict[str, Any],
        timeout_s: float,
        on_progress: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        self.runner = runner
        self.runtime = runtime
        self.scope: dict[str, Any] = {"input": arguments, "steps": {}}
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s = timeout_s
        self.on_progress = on_progress
        self.trace: dict[str, dict[str, Any]] = {}
        self.done: dict[str, asyncio.Event] = {s.id: asyncio.Event() for s in runtime.steps}

    async def execute(self) -> Response:
        tasks = [asyncio.create_task(self.step(step)) for step in self.runtime.steps]
        try:
            async with asyncio.timeout(self.timeout_s):
                for finished in asyncio.as_completed(tasks):
                    await finished  # the first failure propagates at once
        except StepFailed as exc:
            return self.failed(str(exc))
        except TimeoutError:
            return Response.timed_out(self.timeout_s)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            if self.runtime.output is not None:
                value = resolve(self.runtime.output, self.scope)
            else:
                value = self.scope["steps"][self.runtime.steps[-1].id]
        except KeyError as exc:
            return self.failed(f"the chain's output: {exc.args[0]}")
        result = Response.from_value(value)
        structured = dict(result.structured or {})
        structured["steps"] = self.trace
        return Response(is_error=False, content=result.content, structured=structured)

    def failed(self, message: str) -> Response:
        response = Response.error(message)
        return Response(is_error=True, content=response.content, structured={"steps": self.trace})

    async def step(self, step: ChainStep) -> None:
        for other in step.needs():
            await self.done[other].wait()
        preparer = self.runner.preparer
        assert preparer is not None
        started = time.perf_counter()
        record: dict[str, Any] = {"tool": step.tool, "status": "running"}
        self.trace[step.id] = record
        try:
            arguments = resolve(step.arguments, self.scope)
        except KeyError as exc:
            record.update(status="failed", error=str(exc.args[0]))
            raise StepFailed(step, str(exc.args[0])) from None
        record["arguments"] = arguments
        try:
            tool, merged = await preparer.prepare(step.tool, arguments)
        except ToolrunError as exc:
            record.update(status="failed", error=str(exc))
            raise StepFailed(step, str(exc)) from None
        remaining = max(0.001, self.deadline - time.monotonic())
        own = self.runner.tools.timeout_for(tool, None)
        response = await self.runner.tools.run(tool, merged, min(own, remaining))
        record.update(
            tool=tool.id,
            status="failed" if response.is_error else "succeeded",
            result=response.to_dict(),
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        if response.is_error:
            raise StepFailed(step, response.text or "the tool failed")
        self.scope["steps"][step.id] = response.value
        if self.on_progress is not None:
            finished = sum(1 for r in self.trace.values() if r["status"] == "succeeded")
            self.on_progress(
                {
                    "fraction": finished / len(self.runtime.steps),
                    "message": f"step {step.id} done",
                    "data": {"step": step.id, "tool": tool.id},
                }
            )
        self.done[step.id].set()
