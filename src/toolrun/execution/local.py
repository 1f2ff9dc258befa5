"""The embedded executor: a bounded asyncio queue, dispatcher tasks, persisted jobs.

Jobs are written to the store when queued, when they start and when they end, so a restart
loses none: :meth:`LocalExecutor.start` marks jobs left ``running`` as failed (interrupted) and
queues the ``queued`` ones again. Tool code runs wherever the tool's runtime and isolation say
(:class:`~toolrun.execution.runner.ToolRunner`): worker processes by default, the API process
only for trusted (``isolation="inline"``) tools.

Two rules keep waiters from hanging: a cancellation reaches only the *call* (the inner task
running the tool), never the bookkeeping around it; and whatever happens while storing a
finished job, its waiters are told.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from toolrun.config import Settings
from toolrun.errors import (
    ArgumentsInvalid,
    JobAlreadyFinished,
    NotExecutable,
    QueueFull,
    ToolrunError,
)
from toolrun.execution.base import Executor
from toolrun.execution.jobs import Job, JobStatus, utcnow
from toolrun.execution.recorder import JobRecorder
from toolrun.execution.runner import ToolRunner
from toolrun.execution.tool_cache import ToolCache
from toolrun.execution.validation import ArgumentValidator
from toolrun.registry.tool import Tool, find_nul
from toolrun.response import Response, TimedOut
from toolrun.storage.job_store import INTERRUPTED, JobStore
from toolrun.storage.tool_store import ToolStore

log = logging.getLogger(__name__)
T = TypeVar("T")
CANCELLED = "cancelled by request"
SHUTDOWN_GRACE_S = 5.0


def is_timeout(response: Response) -> bool:
    return isinstance(response, TimedOut)


class _NoLongerQueued(Exception):
    """Raised from a job's start hook when it was cancelled while waiting for a worker."""


@dataclass
class _Progress:
    """The job as far as it has got (queued, then running once its call starts)."""

    job: Job


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
        self._running: dict[str, asyncio.Task[None]] = {}  # job id -> its bookkeeping task
        self._calls: dict[str, asyncio.Task[Response]] = {}  # job id -> the call itself
        self._cancel_requested: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._dispatchers: list[asyncio.Task[None]] = []
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
        if recovered:
            log.info("re-queueing %d job(s) left queued by the previous run", len(recovered))
            # put() waits for room: every recovered job is queued, however many there are.
            feeder = asyncio.create_task(self._feed(recovered), name="toolrun-recovery")
            self._background.add(feeder)
            feeder.add_done_callback(self._background.discard)
        self._dispatchers = [
            asyncio.create_task(self._dispatch(), name=f"toolrun-dispatch-{i}")
            for i in range(self.concurrency)
        ]

    async def _feed(self, jobs: list[Job]) -> None:
        queue = self._require_queue()
        for job in jobs:
            await queue.put((job, None))

    async def close(self) -> None:
        for task in [*self._dispatchers, *self._background]:
            task.cancel()
        await asyncio.gather(*self._dispatchers, *self._background, return_exceptions=True)
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
        generation = self._tool_cache.generation
        tool = self._tool_cache.get(tool_ref)
        if tool is None:
            tool = await self._db_call(self.tools.get, tool_ref)
            self._tool_cache.put(tool_ref, tool, generation)
        if tool.runtime is None:
            raise NotExecutable(
                f"tool {tool.id!r} has no runtime, so it cannot be called; "
                "give it one (python, command or http) with PUT /tool/{id}"
            )
        merged = {**tool.default_params, **(arguments or {})}
        where = find_nul(merged)
        if where is not None:
            raise ArgumentsInvalid(
                f"arguments may not contain the character U+0000 (the job store cannot keep it); "
                f"found in {where}"
            )
        self.validator.validate(tool, merged)
        return tool, merged

    async def submit(self, tool_ref: str, arguments: dict[str, Any] | None = None) -> Job:
        tool, merged = await self.prepare(tool_ref, arguments)
        return await self._enqueue(tool, merged)

    async def _enqueue(
        self, tool: Tool, arguments: dict[str, Any], waiter: asyncio.Future[Job] | None = None
    ) -> Job:
        """Persist a queued job and hand it to the dispatchers; ``waiter`` (if given) is
        resolved with the finished job. Once the write starts, the job is queued even if the
        caller goes away (a persisted job that no dispatcher ever sees would be lost)."""
        queue = self._require_queue()
        if queue.qsize() + self._reserved >= self.settings.queue_size:
            raise QueueFull(f"the job queue is full ({self.settings.queue_size} jobs); retry later")
        job = Job(
            tool_id=tool.id, arguments=arguments, timeout_s=self.runner.timeout_for(tool, None)
        )
        if waiter is not None:
            self._waiters.setdefault(job.id, []).append(waiter)

        async def persist_and_queue() -> None:
            try:
                await self._db_call(self.jobs.add, job)
            except BaseException:
                self._waiters.pop(job.id, None)
                raise
            finally:
                self._reserved -= 1
            queue.put_nowait((job, tool))

        self._reserved += 1  # with the check above, before any await: no two callers overfill
        await asyncio.shield(persist_and_queue())
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
            timeout_s=self.runner.timeout_for(tool, None),
            status=JobStatus.RUNNING,
            started_at=utcnow(),
            attempts=1,
        )
        try:
            final = await self._execute(_Progress(started), tool, cancellable=False)
        except asyncio.CancelledError:  # the caller went away: the call was stopped
            self._recorder.record(self._ended(started, JobStatus.CANCELLED, CANCELLED))
            raise
        assert final is not None  # only a queued job can find itself no longer queued
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
                task = asyncio.create_task(self._run(job, tool), name=f"toolrun-job-{job.id}")
                self._running[job.id] = task
                # wait() does not raise when the job's task ends badly, only when we are cancelled.
                await asyncio.wait({task})
            finally:
                queue.task_done()

    async def _run(self, job: Job, tool: Tool | None) -> None:
        """One queued job, from ``queued`` to a final status that is stored and announced.

        The job is stored as ``running`` only when its call really starts (for a worker-process
        tool, once a worker is free), so a crash before that leaves it ``queued`` to run after
        the restart, and a cancel before that means it never runs."""
        progress = _Progress(job)

        async def mark_started() -> None:
            started = job.evolve(
                status=JobStatus.RUNNING, started_at=utcnow(), attempts=job.attempts + 1
            )
            if not await self._db_call(self.jobs.save_if, started, JobStatus.QUEUED):
                raise _NoLongerQueued
            progress.job = started

        try:
            if tool is None:  # recovered after a restart: read the tool now
                tool = await self._db_call(self.tools.get, job.tool_id)
            final = await self._execute(progress, tool, on_start=mark_started)
            if final is None:
                return  # cancelled while it waited: whoever cancelled it has told the waiters
        except asyncio.CancelledError:  # only at shutdown: the call was stopped
            if progress.job.status == JobStatus.RUNNING:
                interrupted = self._ended(progress.job, JobStatus.FAILED, INTERRUPTED)
                await asyncio.shield(self._finish(interrupted))
            raise
        except ToolrunError as exc:  # e.g. the tool was deleted before a recovered job ran
            final = self._ended(progress.job, JobStatus.FAILED, exc.message)
        except Exception as exc:  # a bug or a store failure: fail the job, keep serving
            log.exception("job %s failed outside its tool", job.id)
            message = f"internal error: {type(exc).__name__}"
            final = self._ended(progress.job, JobStatus.FAILED, message)
        finally:
            self._running.pop(job.id, None)
        await self._finish(final)

    async def _execute(
        self,
        progress: _Progress,
        tool: Tool,
        *,
        cancellable: bool = True,
        on_start: Callable[[], Awaitable[None]] | None = None,
    ) -> Job | None:
        """Run a job's call and turn its outcome into the finished job (built from
        ``progress.job``, which ``on_start`` may advance); None when ``on_start`` found the job
        no longer queued. Raises only if *we* are cancelled. A ``cancellable`` call runs in an
        inner task, the one :meth:`cancel` stops; an inline invocation (never queued, so never
        cancelled by id) is awaited directly, which saves a task on the fast path."""
        job = progress.job
        if job.id in self._cancel_requested:
            self._cancel_requested.discard(job.id)
            return self._ended(job, JobStatus.CANCELLED, CANCELLED)
        timeout = job.timeout_s or self.runner.timeout_for(tool, None)
        if not cancellable:
            try:
                response = await self.runner.run(tool, job.arguments, timeout)
            except ToolrunError as exc:
                return self._ended(job, JobStatus.FAILED, exc.message)
            except Exception as exc:
                log.exception("runner failed on job %s", job.id)
                message = f"internal error: {type(exc).__name__}"
                return self._ended(job, JobStatus.FAILED, message)
            return self._finished(job, response)
        call = asyncio.create_task(self.runner.run(tool, job.arguments, timeout, on_start=on_start))
        self._calls[job.id] = call
        try:
            await asyncio.wait({call})
        except asyncio.CancelledError:
            call.cancel()
            await asyncio.wait({call})
            raise
        finally:
            self._calls.pop(job.id, None)
        if call.cancelled():
            if progress.job.status == JobStatus.QUEUED:
                return None  # cancelled before it started: cancel() stored and announced it
            return self._ended(progress.job, JobStatus.CANCELLED, CANCELLED)
        error = call.exception()
        if isinstance(error, _NoLongerQueued):
            return None
        if isinstance(error, ToolrunError):
            return self._ended(progress.job, JobStatus.FAILED, error.message)
        if error is not None:  # a bug in a runner: the job fails, the server keeps serving
            log.error("runner failed on job %s", job.id, exc_info=error)
            message = f"internal error: {type(error).__name__}: {error}"
            return self._ended(progress.job, JobStatus.FAILED, message)
        return self._finished(progress.job, call.result())

    @staticmethod
    def _finished(started: Job, response: Response) -> Job:
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
    def _ended(job: Job, status: JobStatus, message: str) -> Job:
        return job.evolve(
            status=status, error=message, result=Response.error(message), finished_at=utcnow()
        )

    async def _finish(self, job: Job) -> None:
        """Store a finished job and tell its waiters, whatever the store says."""
        try:
            await self._db_call(self.jobs.save, job)
        except Exception as exc:
            log.exception("could not store the result of job %s", job.id)
            job = self._ended(
                job, JobStatus.FAILED, f"the result could not be stored: {type(exc).__name__}"
            )
            try:
                await self._db_call(self.jobs.save, job)
            except Exception:
                log.exception("could not store job %s as failed either", job.id)
        finally:
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
            cancelled = self._ended(job, JobStatus.CANCELLED, CANCELLED)
            if await self._db_call(self.jobs.save_if, cancelled, JobStatus.QUEUED):
                self._notify(cancelled)  # its dispatcher will find it no longer queued
                waiting = self._calls.get(job_id)  # it may be waiting for a free worker
                if waiting is not None:
                    waiting.cancel()
                return cancelled
            job = await self.get(job_id)  # it started meanwhile
        if job.status == JobStatus.RUNNING and job_id in self._running:
            call = self._calls.get(job_id)
            if call is not None:
                call.cancel()
            else:  # between "running" being stored and the call starting
                self._cancel_requested.add(job_id)
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
