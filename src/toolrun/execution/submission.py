"""What every executor does before a job exists: resolve the tool, merge its default params
under the arguments, validate them, and fix the job's time limit; and the rules of a job's
maximum age and of its next attempt, which executors without a waiting room apply.

:class:`CallPreparer` needs no worker pool (API replicas of the scale-out setup have none):
:class:`~toolrun.execution.celery_executor.CeleryExecutor` calls :meth:`CallPreparer.prepare`;
:class:`~toolrun.execution.local.LocalExecutor` calls :meth:`CallPreparer.tool` and
:meth:`CallPreparer.arguments` with its runner's check of the tool in between.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from datetime import timedelta
from typing import Any

from toolrun.config import Settings
from toolrun.errors import ArgumentsInvalid, NotExecutable
from toolrun.execution.jobs import Job, JobStatus, utcnow
from toolrun.execution.tool_cache import ToolCache
from toolrun.execution.validation import ArgumentValidator
from toolrun.registry.tool import Tool, find_nul
from toolrun.storage.tool_store import ToolStore


def time_limit(settings: Settings, tool: Tool, timeout_s: float | None = None) -> float:
    """The given limit, else the tool's, else the default; never above the maximum (the rule of
    :meth:`ToolRunner.timeout_for <toolrun.execution.runner.ToolRunner.timeout_for>`)."""
    chosen = timeout_s or tool.timeout_s or settings.default_timeout_s
    return min(chosen, settings.max_timeout_s)


def max_age(settings: Settings, tool: Tool | None) -> float | None:
    """The tool's ``policy.max_age_s``, else ``settings.max_job_age_s`` (None: no limit)."""
    if tool is not None and tool.policy.max_age_s is not None:
        return tool.policy.max_age_s
    return settings.max_job_age_s


def expired(job: Job, limit_s: float | None) -> Job | None:
    """``job`` failed as expired if it is older than ``limit_s`` (not dead-lettered yet);
    None while it may still run."""
    if limit_s is None:
        return None
    age = (utcnow() - job.created_at).total_seconds()
    if age < limit_s:
        return None
    message = (
        f"expired: still queued {age:.3g}s after it was created (maximum age {limit_s:g}s), "
        "so it was not run"
    )
    if job.attempts:
        message += " again"
    return job.ended(JobStatus.FAILED, message)


def next_attempt(job: Job, tool: Tool, error: str) -> Job:
    """``job`` (whose attempt failed with ``error``) queued again for its next attempt, due
    after the backoff of the tool's retry policy."""
    delay = tool.policy.retry.delay_before(job.attempts + 1)
    return job.evolve(
        status=JobStatus.QUEUED,
        next_attempt_at=utcnow() + timedelta(seconds=delay),
        error=f"attempt {job.attempts} failed: {error}",
        result=None,
        finished_at=None,
    )


class CallPreparer:
    """Resolves and validates calls; resolved tools are cached ``tool_cache_ttl_s`` (this
    process's own writes to the registry clear the cache at once)."""

    def __init__(self, settings: Settings, tools: ToolStore, db: Executor) -> None:
        self.settings = settings
        self.tools = tools
        self._db = db
        self.validator = ArgumentValidator()
        self._cache = ToolCache(settings.tool_cache_ttl_s)
        tools.on_change(self._cache.clear)

    async def tool(self, tool_ref: str) -> Tool:
        """The tool ``tool_ref`` names (from the cache when fresh); raises ``NotFound``."""
        generation = self._cache.generation
        tool = self._cache.get(tool_ref)
        if tool is None:
            loop = asyncio.get_running_loop()
            tool = await loop.run_in_executor(self._db, self.tools.get, tool_ref)
            self._cache.put(tool_ref, tool, generation)
        return tool

    async def callable_tool(self, tool_ref: str) -> Tool:
        """:meth:`tool`, refused with :class:`NotExecutable` when it has no runtime."""
        tool = await self.tool(tool_ref)
        if tool.runtime is None:
            raise NotExecutable(
                f"tool {tool.id!r} has no runtime, so it cannot be called; "
                "give it one (python, command or http) with PUT /tool/{id}"
            )
        return tool

    def arguments(self, tool: Tool, arguments: dict[str, Any] | None) -> dict[str, Any]:
        """The tool's default params merged under ``arguments``, validated."""
        merged = {**tool.default_params, **(arguments or {})}
        where = find_nul(merged)
        if where is not None:
            raise ArgumentsInvalid(
                f"arguments may not contain the character U+0000 (the job store cannot keep it); "
                f"found in {where}"
            )
        self.validator.validate(tool, merged)
        return merged

    async def prepare(
        self, tool_ref: str, arguments: dict[str, Any] | None
    ) -> tuple[Tool, dict[str, Any]]:
        """Resolve the tool and validate the arguments (no check of where it can run)."""
        tool = await self.callable_tool(tool_ref)
        return tool, self.arguments(tool, arguments)
