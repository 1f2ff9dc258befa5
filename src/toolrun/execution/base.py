"""The executor interface: every call of a tool is a job submitted here."""

from __future__ import annotations

import abc
from typing import Any

from toolrun.execution.jobs import Job, JobStatus


class Executor(abc.ABC):
    """Queues jobs and runs them. Implementations: :class:`~toolrun.execution.local.LocalExecutor`
    (embedded default)."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def submit(self, tool_ref: str, arguments: dict[str, Any] | None = None) -> Job:
        """Validate and queue a call; returns the queued job at once."""

    @abc.abstractmethod
    async def wait(self, job_id: str, timeout_s: float | None = None) -> Job:
        """The job once it has reached a final status (or as it is when ``timeout_s`` passes)."""

    @abc.abstractmethod
    async def invoke(self, tool_ref: str, arguments: dict[str, Any] | None = None) -> Job:
        """Submit and wait: the finished job."""

    @abc.abstractmethod
    async def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job; returns it cancelled."""

    @abc.abstractmethod
    async def get(self, job_id: str) -> Job: ...

    @abc.abstractmethod
    async def list_jobs(
        self, *, status: JobStatus | None = None, tool_id: str | None = None, limit: int = 100
    ) -> list[Job]: ...
