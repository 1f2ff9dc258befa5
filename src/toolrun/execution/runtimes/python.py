"""Python callables: in a worker process (the default), or inline for trusted tools."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from toolrun import progress
from toolrun.errors import NotExecutable
from toolrun.execution.pool import WorkerPool
from toolrun.execution.runtimes.base import RuntimeRunner, StartAwareRunner
from toolrun.execution.runtimes.thread_hop import ThreadHop
from toolrun.execution.worker import exception_response, load_error, load_target
from toolrun.registry.discovery import SOURCE_FOLDER, mount_folder
from toolrun.registry.runtimes import PythonRuntime
from toolrun.registry.tool import Tool
from toolrun.response import Response

T = TypeVar("T")


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def python_target(tool: Tool) -> str:
    if not isinstance(tool.runtime, PythonRuntime):
        raise NotExecutable(f"tool {tool.id!r} does not have a python runtime")
    return tool.runtime.target


class ProcessPythonRunner(StartAwareRunner):
    """Runs the callable in a :class:`WorkerPool` worker; owns the pool's start and close."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    async def start(self) -> None:
        await self.pool.start()

    async def close(self) -> None:
        await self.pool.close()

    async def run_with_start_hook(
        self,
        tool: Tool,
        arguments: dict[str, Any],
        timeout_s: float,
        on_start: Callable[[], Awaitable[None]] | None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> Response:
        """The hook runs once a worker is free (the pool awaits it), not before; progress
        frames come back over the worker's socket."""
        folder = tool.metadata.get(SOURCE_FOLDER)
        return await self.pool.call(
            python_target(tool),
            arguments,
            timeout_s,
            source_folder=folder if isinstance(folder, str) else None,
            on_start=on_start,
            on_progress=on_progress,
        )


class InlinePythonRunner(RuntimeRunner):
    """Runs a trusted tool in the API process: coroutines on the event loop, plain functions
    on a private thread pool (so slow tools cannot starve the loop's default executor).

    A timeout answers at once, but a plain function cannot be interrupted and finishes in
    its thread: that is the price of ``isolation="inline"``.
    """

    def __init__(self, max_threads: int = 8) -> None:
        self._cache: dict[str, Callable[..., Any]] = {}
        self._threads = ThreadHop(max_threads, "toolrun-inline")

    async def close(self) -> None:
        self._threads.close()

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
        return await self.run(tool, arguments, timeout_s, on_progress)

    async def run(
        self,
        tool: Tool,
        arguments: dict[str, Any],
        timeout_s: float,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> Response:
        target = python_target(tool)
        func = self._cache.get(target)
        if func is None:  # a first import may be slow: keep it off the event loop
            try:
                folder = tool.metadata.get(SOURCE_FOLDER)
                if isinstance(folder, str):
                    await self._in_thread(mount_folder, folder)
                func = await self._in_thread(load_target, target, self._cache)
            except Exception as exc:
                return load_error(target, exc)
        deadline = asyncio.timeout(timeout_s)
        try:
            async with deadline:
                if on_progress is None:  # the fast path: no context to set up
                    result = await self._invoke(func, arguments)
                else:
                    result = await self._invoke_reporting(func, arguments, on_progress)
            return Response.from_value(result)
        except TimeoutError as exc:
            if deadline.expired():
                return Response.timed_out(timeout_s)
            return exception_response(exc)
        except (Exception, SystemExit) as exc:
            return exception_response(exc)

    async def _invoke(self, func: Callable[..., Any], arguments: dict[str, Any]) -> Any:
        # ``func`` takes the argument dict (see worker.load_target); for a coroutine function
        # the thread only creates the coroutine, which is awaited here on the loop.
        result = await self._in_thread(func, arguments)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def _invoke_reporting(
        self,
        func: Callable[..., Any],
        arguments: dict[str, Any],
        on_progress: Callable[[dict[str, Any]], None],
    ) -> Any:
        """:meth:`_invoke` in a context whose progress reports reach ``on_progress`` on the
        loop, whether the tool reports from its thread or from a coroutine."""
        loop = asyncio.get_running_loop()

        def sink(event: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(on_progress, event)

        context = contextvars.copy_context()
        context.run(progress.set_call_sink, sink)
        result = await self._in_thread(context.run, func, arguments)
        if inspect.isawaitable(result):  # a coroutine tool: its task runs in that context
            result = await asyncio.create_task(_await(result), context=context)
        return result

    async def _in_thread(self, func: Callable[..., T], *args: Any) -> T:
        result: T = await self._threads.run(func, *args)
        return result
