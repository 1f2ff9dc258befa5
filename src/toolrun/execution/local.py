"""The embedded executor: a bounded asyncio queue, dispatcher tasks, persisted jobs.

Jobs are written to the store when queued, when they start and when they end, so a restart
loses none: :meth:`LocalExecutor.start` marks jobs left ``running`` as failed (interrupted) and
queues the ``queued`` ones again. Tool code runs wherever the tool's runtime and isolation say
(:class:`~toolrun.execution.runner.ToolRunner`): worker processes by default, the API process
only for trusted (``isolation="inline"``) tools.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from toolrun.config import Settings
from toolrun.errors import JobAlreadyFinished, NotExecutable, QueueFull, ToolrunError
from toolrun.execution.base import Executor
from toolrun.execution.jobs import Job, JobStatus, utcnow
from toolrun.execution.recorder import JobRecorder
from toolrun.execution.runner import ToolRunner
from toolrun.execution.tool_cache import ToolCache
from toolrun.execution.validation import ArgumentValidator
from toolrun.registry.tool import Tool
from toolrun.response import Response
from toolrun.storage.job_store import INTERRUPTED, JobStore
from toolrun.storage.tool_store import ToolStore

log = logging.getLogger(__name__)
T = TypeVar("T")
CANCELLED = "cancelled by request"
SHUTDOWN_GRACE_S = 5.0


def is_timeout(response: Response) -> bool:
    return response.is_error and response.text.startswith("timed out")


class LocalExecutor(Executor):
    """Runs jobs in this process's event loop; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        tools: ToolStore,
        jobs: JobStore,
        runner: ToolRunner,
        *,
        concurrency: int | None = None,
    ) -> None:
        self.settings = settings
        self.tools = tools
        self.jobs = jobs
        self.runner = runner
        self.concurrency = concurrency or settings.concurrency or max(8, settings.workers * 4)
        self.validator = ArgumentValidator()
        # SQLite has one writer: one thread keeps its writes in order and lock-free.
        db_threads = 1 if tools.dialect == "sqlite" else 8
        self._db = ThreadPoolExecutor(max_workers=db_threads, thread_name_prefix="toolrun-db")
        self._queue: asyncio.Queue[tuple[Job, Tool | None]] | None = None
        self._reserved = 0
        self._waiters: dict[str, list[asyncio.Future[Job]]] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._cancelled: set[str] = set()
        self._dispatchers: list[asyncio.Task[None]] = []
        self._closing = False
        self._tool_cache = ToolCache(settings.tool_cache_ttl_s)
        tools.on_change(self._tool_cache.clear)
        self._recorder = JobRecorder(lambda batch: self._db_call(self.jobs.add_many, batch))

    async def _db_call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.settings.queue_size)
        await self.runner.start()
        recovered = await self._db_call(self.jobs.recover)
        for job in recovered[: self.settings.queue_size]:
            self._queue.put_nowait((job, None))
        if recovered:
            log.info("re-queued %d job(s) left queued by the previous run", len(recovered))
        self._dispatchers = [
            asyncio.create_task(self._dispatch(), name=f"toolrun-dispatch-{i}")
            for i in range(self.concurrency)
        ]

    async def close(self) -> None:
        self._closing = True
        for task in self._dispatchers:
            task.cancel()
        await asyncio.gather(*self._dispatchers, return_exceptions=True)
        running = list(self._running.values())
        if running:
            _, pending = await asyncio.wait(running, timeout=SHUTDOWN_GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._recorder.flush()
        await self.runner.close()
        self._db.shutdown(wait=True)

    # -- submission ------------------------------------------------------------------------

    async def prepare(
        self, tool_ref: str, arguments: dict[str, Any] | None
    ) -> tuple[Tool, dict[str, Any]]:
        """Resolve the tool, merge its default params under the arguments and validate them."""
        tool = self._tool_cache.get(tool_ref)
        if tool is None:
            tool = await self._db_call(self.tools.get, tool_ref)
            self._tool_cache.put(tool_ref, tool)
        if tool.runtime is None:
            raise NotExecutable(
                f"tool {tool.id!r} has no runtime, so it cannot be called; "
                "give it one (python, command or http) with PUT /tool/{id}"
            )
        merged = {**tool.default_params, **(arguments or {})}
        self.validator.validate(tool, merged)
        return tool, merged

    def timeout_for(self, tool: Tool) -> float:
        wanted = tool.policy.timeout_s or self.settings.default_timeout_s
        return min(wanted, self.settings.max_timeout_s)

    async def submit(self, tool_ref: str, arguments: dict[str, Any] | None = None) -> Job:
        tool, merged = await self.prepare(tool_ref, arguments)
        return await self._enqueue(tool, merged)

    async def _enqueue(
        self, tool: Tool, arguments: dict[str, Any], waiter: asyncio.Future[Job] | None = None
    ) -> Job:
        """Persist a queued job and hand it to the dispatchers; ``waiter`` (if given) is
        resolved with the finished job."""
        queue = self._require_queue()
        if queue.qsize() + self._reserved >= self.settings.queue_size:
            raise QueueFull(f"the job queue is full ({self.settings.queue_size} jobs); retry later")
        self._reserved += 1
        try:
            job = Job(tool_id=tool.id, arguments=arguments, timeout_s=self.timeout_for(tool))
            await self._db_call(self.jobs.add, job)
        finally:
            self._reserved -= 1
        if waiter is not None:
            self._waiters.setdefault(job.id, []).append(waiter)
        queue.put_nowait((job, tool))
        return job

    async def invoke(self, tool_ref: str, arguments: dict[str, Any] | None = None) -> Job:
        tool, merged = await self.prepare(tool_ref, arguments)
        if tool.policy.trusted:
            return await self._invoke_inline(tool, merged)
        finished: asyncio.Future[Job] = asyncio.get_running_loop().create_future()
        await self._enqueue(tool, merged, finished)
        return await finished

    async def _invoke_inline(self, tool: Tool, arguments: dict[str, Any]) -> Job:
        """The trusted fast path: run in this task, record the job once, when it ends.

        The record is written behind the answer, batched with others (see
        :class:`~toolrun.execution.recorder.JobRecorder`); :meth:`close` waits for it."""
        started = Job(
            tool_id=tool.id,
            arguments=arguments,
            timeout_s=self.timeout_for(tool),
            status=JobStatus.RUNNING,
            started_at=utcnow(),
            attempts=1,
        )
        final = await self._execute(started, tool)
        self._recorder.record(final)
        return final

    # -- running ---------------------------------------------------------------------------

    def _require_queue(self) -> asyncio.Queue[tuple[Job, Tool | None]]:
        if self._queue is None:
            raise RuntimeError("the executor is not started")
        return self._queue

    async def _dispatch(self) -> None:
        queue = self._require_queue()
        while True:
            job, tool = await queue.get()
            try:
                if job.id in self._cancelled:
                    self._cancelled.discard(job.id)
                    continue
                task = asyncio.create_task(self._run(job, tool), name=f"toolrun-job-{job.id}")
                self._running[job.id] = task
                # wait() does not raise when the job's task is cancelled, only when we are.
                await asyncio.wait({task})
            finally:
                queue.task_done()

    async def _run(self, job: Job, tool: Tool | None) -> None:
        try:
            started = job.evolve(
                status=JobStatus.RUNNING, started_at=utcnow(), attempts=job.attempts + 1
            )
            if not await self._db_call(self.jobs.save_if, started, JobStatus.QUEUED):
                return  # cancelled while queued
            if tool is None:
                try:
                    tool = await self._db_call(self.tools.get, job.tool_id)
                except ToolrunError as exc:
                    await self._store_final(self._failed(started, exc.message))
                    return
            final = await self._execute(started, tool)
            await self._store_final(final)
        finally:
            self._running.pop(job.id, None)

    async def _execute(self, started: Job, tool: Tool) -> Job:
        """Run one started job's call; never raises except for our own cancellation."""
        timeout = started.timeout_s or self.settings.default_timeout_s
        try:
            response = await self.runner.run(tool, started.arguments, timeout)
        except asyncio.CancelledError:
            message = INTERRUPTED if self._closing else CANCELLED
            status = JobStatus.FAILED if self._closing else JobStatus.CANCELLED
            final = started.evolve(
                status=status, finished_at=utcnow(), error=message, result=Response.error(message)
            )
            await asyncio.shield(self._store_final(final))
            raise
        except ToolrunError as exc:
            return self._failed(started, exc.message)
        except Exception as exc:  # a bug in a runner: the job fails, the server keeps serving
            log.exception("runner failed on job %s", started.id)
            return self._failed(started, f"internal error: {type(exc).__name__}: {exc}")
        if not response.is_error:
            status = JobStatus.SUCCEEDED
        elif is_timeout(response):
            status = JobStatus.TIMED_OUT
        else:
            status = JobStatus.FAILED
        return started.evolve(
            status=status,
            result=response,
            error=response.text if response.is_error else None,
            finished_at=utcnow(),
        )

    @staticmethod
    def _failed(job: Job, message: str) -> Job:
        return job.evolve(
            status=JobStatus.FAILED,
            error=message,
            result=Response.error(message),
            finished_at=utcnow(),
        )

    async def _store_final(self, job: Job) -> None:
        await self._db_call(self.jobs.save, job)
        self._notify(job)

    def _notify(self, job: Job) -> None:
        for future in self._waiters.pop(job.id, []):
            if not future.done():
                future.set_result(job)

    # -- queries and control ---------------------------------------------------------------

    async def get(self, job_id: str) -> Job:
        unwritten = self._recorder.unwritten(job_id)
        if unwritten is not None:
            return unwritten
        return await self._db_call(self.jobs.get, job_id)

    async def list_jobs(
        self, *, status: JobStatus | None = None, tool_id: str | None = None, limit: int = 100
    ) -> list[Job]:
        await self._recorder.flush()
        return await self._db_call(
            lambda: self.jobs.recent(status=status, tool_id=tool_id, limit=limit)
        )

    async def wait(self, job_id: str, timeout_s: float | None = None) -> Job:
        future: asyncio.Future[Job] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job_id, []).append(future)
        try:
            job = await self.get(job_id)  # registered first, so a finish in between is seen
            if job.status.final:
                return job
            try:
                return await asyncio.wait_for(asyncio.shield(future), timeout_s)
            except TimeoutError:
                return await self.get(job_id)
        finally:
            waiters = self._waiters.get(job_id)
            if waiters and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._waiters[job_id]

    async def cancel(self, job_id: str) -> Job:
        job = await self.get(job_id)
        if job.status == JobStatus.QUEUED:
            cancelled = job.evolve(
                status=JobStatus.CANCELLED,
                finished_at=utcnow(),
                error=CANCELLED,
                result=Response.error(CANCELLED),
            )
            if await self._db_call(self.jobs.save_if, cancelled, JobStatus.QUEUED):
                self._cancelled.add(job_id)
                self._notify(cancelled)
                return cancelled
            job = await self.get(job_id)  # it started meanwhile
        task = self._running.get(job_id)
        if job.status == JobStatus.RUNNING and task is not None:
            task.cancel()
            return await self.wait(job_id)
        if job.status.final:
            raise JobAlreadyFinished(f"job {job_id} has already ended ({job.status.value})")
        raise JobAlreadyFinished(f"job {job_id} is {job.status.value} in another process")

    def stats(self) -> dict[str, Any]:
        queue = self._queue
        return {
            "queued": queue.qsize() if queue else 0,
            "running": len(self._running),
            "concurrency": self.concurrency,
            "queue_size": self.settings.queue_size,
        }
