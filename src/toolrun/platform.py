"""Wires the platform together: store, executor, runner, demo tools, discovery.

The executor is the embedded :class:`~toolrun.execution.local.LocalExecutor` (with its own
worker pool) unless ``settings.executor`` is ``celery``: then ``toolrun worker`` processes run
the jobs and this process has no pool. One ``Platform`` per process; the server, the CLI and
tests build it from a :class:`~toolrun.config.Settings` and ``await start()`` / ``await
close()`` it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from toolrun.config import Settings
from toolrun.errors import InvalidDefinition
from toolrun.execution.base import Executor
from toolrun.execution.local import LocalExecutor
from toolrun.execution.pool import WorkerPool
from toolrun.execution.runner import ToolRunner
from toolrun.registry.tool import Tool
from toolrun.retrieval.service import RetrievalService
from toolrun.storage.engine import make_engine, upgrade
from toolrun.storage.job_store import JobStore
from toolrun.storage.tool_store import ToolStore

log = logging.getLogger(__name__)


class Platform:
    """The store, the executor and what they need; see the module docstring."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(
            settings.resolved_database_url, pool_size=settings.database_pool_size
        )
        self.tools = ToolStore(self.engine)
        self.jobs = JobStore(self.engine)
        # Search over the registry (POST /search, GET /tools?q=); built at start().
        self.retrieval = RetrievalService(settings, self.tools)
        self.executor: Executor
        self.pool: WorkerPool | None = None
        self.runner: ToolRunner | None = None
        if settings.executor == "celery":
            # Scale-out: `toolrun worker` processes run the jobs; no worker pool here.
            from toolrun.execution.celery_executor import CeleryExecutor

            self.executor = CeleryExecutor(settings, self.tools, self.jobs)
        else:
            # Folder tools are mounted in workers by their source_folder, never put on sys.path
            # (where a folder's modules could shadow the standard library's).
            self.pool = WorkerPool(settings.workers)
            self.runner = ToolRunner(settings, self.pool)
            self.executor = LocalExecutor(settings, self.tools, self.jobs, self.runner)
        self._started = False

    def migrate(self) -> None:
        upgrade(self.engine)

    def register_all(self, tools: Iterable[Tool]) -> int:
        """Create or refresh tools (used for demo and discovered tools at start-up)."""
        count = 0
        for tool in tools:
            self.tools.upsert(tool)
            count += 1
        return count

    def startup_tools(self) -> list[Tool]:
        found: list[Tool] = []
        if self.settings.demo:
            from toolrun.demo.catalog import demo_tools

            found.extend(demo_tools())
        if self.settings.functions_dirs or self.settings.functions_packages:
            from toolrun.registry.discovery import discover

            for source in [
                *map(str, self.settings.functions_dirs),
                *self.settings.functions_packages,
            ]:
                found.extend(discover(source))
        ids = [tool.id for tool in found]
        clashes = sorted({i for i in ids if ids.count(i) > 1})
        if clashes:
            raise InvalidDefinition(
                f"start-up tools share ids {clashes}: rename one with @tool(name=...)"
            )
        return found

    async def start(self) -> None:
        if self._started:
            return
        await asyncio.to_thread(self.migrate)
        tools = self.startup_tools()
        if tools:
            count = await asyncio.to_thread(self.register_all, tools)
            log.info("registered %d start-up tool(s)", count)
        self.retrieval.start()  # in the background; searches wait for it
        await self.executor.start()
        self._started = True

    async def close(self) -> None:
        if not self._started:
            return
        self._started = False
        await self.executor.close()
        await asyncio.to_thread(self.retrieval.close)
        self.engine.dispose()
