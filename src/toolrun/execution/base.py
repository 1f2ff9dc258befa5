"""The executor interface: every call of a tool is a job submitted here."""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator
from typing import Any

from toolrun.errors import InfrastructureError, NotDeadLettered
from toolrun.execution.jobs import DeadLetterReason, Job, JobStatus


class Executor(abc.ABC):
    """Queues jobs and runs them. Implementations: :class:`~toolrun.execution.local.LocalExecutor`
    (embedded default), :class:`~toolrun.execution.celery_executor.CeleryExecutor` (scale-out)."""

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

    def stats(self) -> dict[str, Any]:
        """What ``GET /health`` shows of the executor."""
        return {}

    @abc.abstractmethod
    async def list_jobs(
        self, *, status: JobStatus | None = None, tool_id: str | None = None, limit: int = 100
    ) -> list[Job]: ...

    # -- job semantics (docs/jobs.md); an executor without them answers 503 saying so --------

    async def submit_with_key(
        self, tool_ref: str, arguments: dict[str, Any] | None, idempotency_key: str
    ) -> Job:
        """:meth:`submit` once per key: a later call with the same key and request returns
        the first one's job (also after a restart); with another request it raises
        :class:`~toolrun.errors.IdempotencyKeyReused`. See :mod:`toolrun.execution.idempotency`
        and :meth:`JobStore.add_unique <toolrun.storage.job_store.JobStore.add_unique>`."""
        raise self._unsupported("idempotency keys")

    async def invoke_with_key(
        self, tool_ref: str, arguments: dict[str, Any] | None, idempotency_key: str
    ) -> Job:
        """:meth:`submit_with_key` and wait: the finished job (the first call's, on a replay)."""
        job = await self.submit_with_key(tool_ref, arguments, idempotency_key)
        return await self.wait(job.id)

    async def dead_letters(
        self,
        *,
        reason: DeadLetterReason | None = None,
        tool_id: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """The dead-letter list, most recently dead first."""
        raise self._unsupported("the dead-letter list")

    async def retry(self, job_id: str) -> Job:
        """Queue a dead-lettered job again, as a new job whose ``retry_of`` is ``job_id``; the
        old one leaves the list. Raises :class:`~toolrun.errors.NotDeadLettered` otherwise."""
        raise self._unsupported("retrying dead letters")

    async def forget_dead(
        self,
        job_id: str | None = None,
        *,
        reason: DeadLetterReason | None = None,
        tool_id: str | None = None,
    ) -> int:
        """Take one job (or all matching) off the dead-letter list; how many left it."""
        raise self._unsupported("the dead-letter list")

    async def events(self, job_id: str) -> AsyncGenerator[dict[str, Any], None]:
        """A job's events: a ``snapshot`` first, its ``finished`` event last (also for a job
        that had ended already); executors that know more say more in between (``running``,
        ``progress``, ``retrying``)."""
        job = await self.get(job_id)
        yield {
            "event": "snapshot",
            "uuid": job.id,
            "status": job.status.value,
            "job": job.to_dict(),
        }
        if not job.status.final:
            job = await self.wait(job_id)
        yield finished_event(job)

    def _unsupported(self, what: str) -> InfrastructureError:
        return InfrastructureError(f"the {type(self).__name__} does not support {what}")


def not_dead_lettered(job: Job) -> NotDeadLettered:
    """The refusal of a retry (or removal) of ``job``, which is not on the dead-letter list."""
    if job.status.dead:
        why = "it was retried or taken off the list already"
    else:
        why = f"it is {job.status.value}; only failed or timed_out jobs are"
    return NotDeadLettered(f"job {job.id} is not on the dead-letter list: {why}")


def finished_event(job: Job) -> dict[str, Any]:
    """The last event of every job stream."""
    return {"event": "finished", "uuid": job.id, "status": job.status.value, "job": job.to_dict()}
