"""The embedded executor: a ready queue, dispatcher tasks, persisted jobs, per-tool limits.

Jobs are written to the store when queued, when each attempt starts and when they end, so a
restart loses none (the guarantee is in ``docs/jobs.md``). :meth:`LocalExecutor.start` queues
the ``queued`` jobs again (one waiting for a retry waits out its backoff first), retries jobs
left ``running`` whose tool allows another attempt, and fails the others as interrupted.
Tool code runs wherever the tool's runtime and isolation say
(:class:`~toolrun.execution.runner.ToolRunner`): worker processes by default, the API process
only for trusted (``isolation="inline"``) tools.

In memory, jobs wait in a :class:`~toolrun.execution.waiting.WaitingRoom`: the ready queue,
held at their tool's concurrency or rate limit, or delayed until their next attempt (the
last two take no dispatcher). A failed attempt with attempts left goes back there; a job that
ends ``failed`` or ``timed_out`` is dead-lettered. Cancellation and expiry reach a job
wherever it waits.

Two rules keep waiters from hanging: a cancellation reaches only the *call* (the inner task
running the tool), never the bookkeeping around it; and whatever happens while storing a
finished job, its waiters are told.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from toolrun import progress
from toolrun.config import Settings
from toolrun.errors import JobAlreadyFinished, NotDeadLettered, QueueFull, ToolrunError
from toolrun.execution.base import Executor, finished_event, not_dead_lettered
from toolrun.execution.idempotency import check_key, request_hash, same_request
from toolrun.execution.job_feed import JobFeed
from toolrun.execution.jobs import DeadLetterReason, Job, JobStatus, utcnow
from toolrun.execution.recorder import JobRecorder
from toolrun.execution.runner import ToolRunner
from toolrun.execution.submission import CallPreparer, next_attempt
from toolrun.execution.waiting import Entry, WaitingRoom
from toolrun.registry.tool import ExecutionPolicy, Tool
from toolrun.response import Response
from toolrun.storage.job_store import INTERRUPTED, JobStore
from toolrun.storage.tool_store import ToolStore

log = logging.getLogger(__name__)
T = TypeVar("T")
CANCELLED = "cancelled by request"
SHUTDOWN_GRACE_S = 5.0
EVENTS_POLL_S = 5.0
"""An event stream re-reads its job this often (a job run by another process sends none)."""


class _NoLongerQueued(Exception):
    """Raised from a job's start hook when it was cancelled (or expired) while it waited."""


@dataclass
class _Attempt:
    """The job as far as its attempt has got (queued, then running once its call starts);
    ``answered``: the tool itself answered (an error result, a time limit or a crashed worker
    is a failed attempt that may be retried; a runner's or the store's failure is not)."""

    job: Job
    answered: bool = False


def _plain(policy: ExecutionPolicy) -> bool:
    """No retries and no limits: a trusted tool with this policy may take the fast path."""
    return policy.retry.max_attempts == 1 and policy.concurrency is None and not policy.rate_limit


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
        self.feed = JobFeed()
        # SQLite has one writer: one thread keeps its writes in order and lock-free.
        db_threads = 1 if tools.dialect == "sqlite" else 8
        self._db = ThreadPoolExecutor(max_workers=db_threads, thread_name_prefix="toolrun-db")
        self.preparer = CallPreparer(settings, tools, self._db)
        runner.chain.bind(self.preparer)
        self._room: WaitingRoom | None = None
        self._reserved = 0
        self._live_progress: dict[str, dict[str, Any]] = {}  # running job id -> last report
        self._waiters: dict[str, list[asyncio.Future[Job]]] = {}
        self._running: dict[str, asyncio.Task[None]] = {}  # job id -> its bookkeeping task
        self._calls: dict[str, asyncio.Task[Response]] = {}  # job id -> the call itself
        self._cancel_requested: set[str] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._dispatchers: list[asyncio.Task[None]] = []
        self._recorder = JobRecorder(lambda batch: self._db_call(self.jobs.add_many, batch))

    async def _db_call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._room = WaitingRoom(self._on_expiry, self.settings.max_job_age_s)
        await self.runner.start()
        await self._retry_interrupted()
        recovered = await self._db_call(self.jobs.recover)
        if recovered:
            log.info("re-queueing %d job(s) left queued by the previous run", len(recovered))
        for job in recovered:
            wait = (job.next_attempt_at - utcnow()).total_seconds() if job.next_attempt_at else 0
            self._room.delay(Entry(job, None), wait)
        self._dispatchers = [
            asyncio.create_task(self._dispatch(), name=f"toolrun-dispatch-{i}")
            for i in range(self.concurrency)
        ]

    async def _retry_interrupted(self) -> None:
        """Jobs left ``running`` by the previous run whose tool allows another attempt are
        queued again (the call may have happened: that is the at-least-once of retries);
        :meth:`JobStore.recover` fails the rest."""
        for job in await self._db_call(self.jobs.running):
            try:
                tool = await self._tool(job.tool_id)
            except ToolrunError:
                continue
            if job.attempts < tool.policy.retry.max_attempts:
                await self._db_call(
                    self.jobs.save_if, next_attempt(job, tool, INTERRUPTED), JobStatus.RUNNING
                )

    async def close(self) -> None:
        if self._room is not None:
            self._room.close()
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

    async def _tool(self, tool_ref: str) -> Tool:
        return await self.preparer.tool(tool_ref)  # cached: no database round trip when fresh

    async def prepare(
        self, tool_ref: str, arguments: dict[str, Any] | None
    ) -> tuple[Tool, dict[str, Any]]:
        """Resolve the tool, merge its default params under the arguments and validate them."""
        tool = await self.preparer.callable_tool(tool_ref)
        await self.runner.check(tool)  # a tier this machine lacks: refused now, with the reason
        return tool, self.preparer.arguments(tool, arguments)

    def _new_job(self, tool: Tool, arguments: dict[str, Any], **fields: Any) -> Job:
        timeout = self.runner.timeout_for(tool, None)
        return Job(tool_id=tool.id, arguments=arguments, timeout_s=timeout, **fields)

    async def submit(
        self,
        tool_ref: str,
        arguments: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Job:
        if idempotency_key is not None:
            return await self.submit_with_key(tool_ref, arguments, idempotency_key)
        tool, merged = await self.prepare(tool_ref, arguments)
        return await self._enqueue(self._new_job(tool, merged), tool)

    async def submit_with_key(
        self, tool_ref: str, arguments: dict[str, Any] | None, idempotency_key: str
    ) -> Job:
        key = check_key(idempotency_key)
        digest = request_hash(tool_ref, arguments)
        existing = await self._db_call(self.jobs.get_by_key, key)
        if existing is not None:
            return self._with_live_progress(same_request(existing, digest))
        tool, merged = await self.prepare(tool_ref, arguments)
        job = self._new_job(tool, merged, idempotency_key=key, request_hash=digest)
        stored = await self._enqueue(job, tool)  # another submit may have won: its job
        return same_request(stored, digest)

    async def _enqueue(
        self,
        job: Job,
        tool: Tool,
        waiter: asyncio.Future[Job] | None = None,
        *,
        write: Callable[[], tuple[Job, bool]] | None = None,
    ) -> Job:
        """Persist a queued job and hand it to the dispatchers; returns the stored job.

        ``write`` (run in a database thread) stores it and says whether it did; by default an
        insert (one per key for a job with an idempotency key: if another job holds the key,
        that one is returned and nothing is queued). ``waiter`` (if given) is resolved with the
        finished job. Once the write starts, the job is queued even if the caller goes away (a
        persisted job that no dispatcher ever sees would be lost)."""
        self._check_room()
        if write is None:
            write = functools.partial(self._insert, job)
        if waiter is not None:
            self._waiters.setdefault(job.id, []).append(waiter)

        async def persist_and_queue() -> Job:
            try:
                stored, inserted = await self._db_call(write)
            except BaseException:
                self._waiters.pop(job.id, None)
                raise
            finally:
                self._reserved -= 1
            if inserted:
                self.room.put(Entry(job, tool))
            return stored

        self._reserved += 1  # with the check above, before any await: no two callers overfill
        return await asyncio.shield(persist_and_queue())

    def _insert(self, job: Job) -> tuple[Job, bool]:
        if job.idempotency_key is not None:
            return self.jobs.add_unique(job)
        self.jobs.add(job)
        return job, True

    def _check_room(self) -> None:
        if len(self.room) + self._reserved >= self.settings.queue_size:
            raise QueueFull(f"the job queue is full ({self.settings.queue_size} jobs); retry later")

    async def invoke(
        self,
        tool_ref: str,
        arguments: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Job:
        if idempotency_key is not None:
            return await self.invoke_with_key(tool_ref, arguments, idempotency_key)
        tool, merged = await self.prepare(tool_ref, arguments)
        if tool.policy.trusted and _plain(tool.policy):
            return await self._invoke_inline(tool, merged)
        finished: asyncio.Future[Job] = asyncio.get_running_loop().create_future()
        await self._enqueue(self._new_job(tool, merged), tool, finished)
        return await finished

    async def _invoke_inline(self, tool: Tool, arguments: dict[str, Any]) -> Job:
        """The trusted fast path: run in this task, record the job once, when it ends.

        The record is written behind the answer, batched with others (see
        :class:`~toolrun.execution.recorder.JobRecorder`); :meth:`close` waits for it."""
        started = self._new_job(
            tool, arguments, status=JobStatus.RUNNING, started_at=utcnow(), attempts=1
        )
        attempt = _Attempt(started)
        try:
            final = await self._execute(attempt, tool, cancellable=False)
        except asyncio.CancelledError:  # the caller went away: the call was stopped
            self._recorder.record(started.ended(JobStatus.CANCELLED, CANCELLED))
            raise
        assert final is not None  # only a queued job can find itself no longer queued
        reason = DeadLetterReason.EXHAUSTED if attempt.answered else DeadLetterReason.ERROR
        final = final.dead_lettered(reason)
        self._recorder.record(final)
        return final

    # -- running ---------------------------------------------------------------------------

    @property
    def room(self) -> WaitingRoom:
        if self._room is None:
            raise RuntimeError("the executor is not started")
        return self._room

    async def _dispatch(self) -> None:
        room = self.room
        while True:
            entry = await room.get()
            job_id = entry.job.id
            task = asyncio.create_task(self._run(entry), name=f"toolrun-job-{job_id}")
            self._running[job_id] = task
            # wait() does not raise when the job's task ends badly, only when we are cancelled.
            await asyncio.wait({task})

    async def _run(self, entry: Entry) -> None:
        """One attempt of a job, from ``queued`` to a final status that is stored and announced
        (or back to ``queued`` for a retry, or held back by its tool's limits).

        The job is stored as ``running`` only when its call really starts (for a worker-process
        tool, once a worker is free), so a crash before that leaves it ``queued`` to run after
        the restart, and a cancel before that means it never runs."""
        job = entry.job
        attempt = _Attempt(job)
        room = self.room
        reason = DeadLetterReason.ERROR
        try:
            try:
                if entry.tool is None:  # recovered, or waiting for a retry: read the tool now
                    entry.tool = await self._tool(job.tool_id)
                tool = entry.tool
                if room.expired(job, tool):
                    await self._expire(job, tool)
                    return
                if not entry.admitted and not room.admit(entry):
                    return  # held at its tool's limit: it comes back in its turn
                final = await self._execute(attempt, tool, on_start=self._start_hook(attempt, tool))
                if final is None:
                    return  # cancelled or expired while it waited: already stored and announced
                if attempt.answered:
                    reason = DeadLetterReason.EXHAUSTED
            except asyncio.CancelledError:  # only at shutdown: the call was stopped
                if attempt.job.status == JobStatus.RUNNING:
                    await asyncio.shield(self._interrupted(attempt.job, entry.tool))
                raise
            except ToolrunError as exc:  # e.g. the tool was deleted before a recovered job ran
                final = attempt.job.ended(JobStatus.FAILED, exc.message)
            except Exception as exc:  # a bug or a store failure: fail the job, keep serving
                log.exception("job %s failed outside its tool", job.id)
                final = attempt.job.ended(JobStatus.FAILED, f"internal error: {type(exc).__name__}")
            finally:
                room.done(entry, started=attempt.job.status != JobStatus.QUEUED)
            last_report = self._live_progress.pop(job.id, None)
            if last_report is not None:
                final = final.evolve(progress=last_report)
            if attempt.answered and entry.tool and self._may_retry(final, entry.tool):
                await self._retry_later(final, entry.tool)
            else:
                await self._finish(final.dead_lettered(reason))
        finally:
            self._running.pop(job.id, None)
            self._live_progress.pop(job.id, None)
            self._cancel_requested.discard(job.id)

    def _start_hook(self, attempt: _Attempt, tool: Tool) -> Callable[[], Awaitable[None]]:
        async def mark_started() -> None:
            job = attempt.job
            if self.room.expired(job, tool):  # it waited for a worker past its maximum age
                await self._expire(job, tool, stop_call=False)
                raise _NoLongerQueued
            started = job.started()
            write = asyncio.ensure_future(
                self._db_call(self.jobs.save_if, started, JobStatus.QUEUED)
            )
            try:
                stored = await asyncio.shield(write)
            except asyncio.CancelledError:
                # cancel() may see "running" as soon as it is stored, and cancel the call
                # before this line resumes: the job is then running, and ours to end as
                # cancelled (not left as if it never started, with nobody to answer).
                if await write:
                    attempt.job = started
                raise
            if not stored:
                raise _NoLongerQueued
            attempt.job = started
            if self.feed.watched(job.id):
                self.feed.publish(
                    job.id,
                    {
                        "event": "running",
                        "uuid": job.id,
                        "attempt": started.attempts,
                        "at": _iso(started.started_at),
                    },
                )

        return mark_started

    async def _execute(
        self,
        attempt: _Attempt,
        tool: Tool,
        *,
        cancellable: bool = True,
        on_start: Callable[[], Awaitable[None]] | None = None,
    ) -> Job | None:
        """Run a job's call and turn its outcome into the finished job (built from
        ``attempt.job``, which ``on_start`` may advance); None when ``on_start`` found the job
        no longer queued. Raises only if *we* are cancelled. A ``cancellable`` call runs in an
        inner task, the one :meth:`cancel` stops; an inline invocation (never queued, so never
        cancelled by id) is awaited directly, which saves a task on the fast path."""
        job = attempt.job
        if job.id in self._cancel_requested:
            self._cancel_requested.discard(job.id)
            return job.ended(JobStatus.CANCELLED, CANCELLED)
        timeout = job.timeout_s or self.runner.timeout_for(tool, None)
        if not cancellable:
            try:
                response = await self.runner.run(tool, job.arguments, timeout)
            except ToolrunError as exc:
                return job.ended(JobStatus.FAILED, exc.message)
            except Exception as exc:
                log.exception("runner failed on job %s", job.id)
                message = f"internal error: {type(exc).__name__}"
                return job.ended(JobStatus.FAILED, message)
            attempt.answered = True
            return job.answered(response)
        on_progress = functools.partial(self._on_progress, job.id)
        call = asyncio.create_task(
            self.runner.run(
                tool, job.arguments, timeout, on_start=on_start, on_progress=on_progress
            )
        )
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
            if attempt.job.status == JobStatus.QUEUED:
                return None  # cancelled before it started: cancel() stored and announced it
            return attempt.job.ended(JobStatus.CANCELLED, CANCELLED)
        error = call.exception()
        if isinstance(error, _NoLongerQueued):
            return None
        if isinstance(error, ToolrunError):
            return attempt.job.ended(JobStatus.FAILED, error.message)
        if error is not None:  # a bug in a runner: the job fails, the server keeps serving
            log.error("runner failed on job %s", job.id, exc_info=error)
            message = f"internal error: {type(error).__name__}: {error}"
            return attempt.job.ended(JobStatus.FAILED, message)
        attempt.answered = True
        return attempt.job.answered(call.result())

    def _on_progress(self, job_id: str, raw: dict[str, Any]) -> None:
        """A progress report of a running job's tool: checked, kept and streamed."""
        checked = progress.parse(raw)  # whichever runner it came through
        if checked is None:
            return
        report = {**checked, "at": _iso(utcnow())}
        self._live_progress[job_id] = report
        self.feed.publish(job_id, {"event": "progress", "uuid": job_id, "progress": report})

    async def _finish(self, job: Job) -> None:
        """Store a finished job and tell its waiters, whatever the store says."""
        try:
            await self._db_call(self.jobs.save, job)
        except Exception as exc:
            log.exception("could not store the result of job %s", job.id)
            message = f"the result could not be stored: {type(exc).__name__}"
            job = job.ended(JobStatus.FAILED, message).dead_lettered(DeadLetterReason.ERROR)
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
        if self.feed.watched(job.id):
            self.feed.publish(job.id, finished_event(job))

    # -- retries and expiry ----------------------------------------------------------------

    @staticmethod
    def _may_retry(job: Job, tool: Tool) -> bool:
        return job.status.dead and job.attempts < tool.policy.retry.max_attempts

    async def _retry_later(self, failed: Job, tool: Tool) -> None:
        waiting = next_attempt(failed, tool, failed.error or failed.status.value)
        try:
            if not await self._db_call(self.jobs.save_if, waiting, JobStatus.RUNNING):
                return  # another process ended it
        except Exception:
            log.exception("could not queue job %s for its next attempt", failed.id)
            await self._finish(failed.dead_lettered(DeadLetterReason.EXHAUSTED))
            return
        if self.feed.watched(failed.id):
            self.feed.publish(
                failed.id,
                {
                    "event": "retrying",
                    "uuid": failed.id,
                    "attempt": failed.attempts,
                    "error": failed.error,
                    "next_attempt_at": _iso(waiting.next_attempt_at),
                },
            )
        if failed.id in self._cancel_requested:  # cancelled while its attempt was ending
            self._cancel_requested.discard(failed.id)
            await self._end_waiting(waiting, waiting.ended(JobStatus.CANCELLED, CANCELLED))
            return
        assert waiting.next_attempt_at is not None
        delay = (waiting.next_attempt_at - utcnow()).total_seconds()
        self.room.delay(Entry(waiting, None), delay)

    async def _interrupted(self, job: Job, tool: Tool | None) -> None:
        """At shutdown, a running job's call was stopped: its next attempt (after the restart)
        if it has one left, else it fails as interrupted."""
        try:
            if tool is not None and job.attempts < tool.policy.retry.max_attempts:
                waiting = next_attempt(job, tool, INTERRUPTED)
                await self._db_call(self.jobs.save_if, waiting, JobStatus.RUNNING)
                return
        except Exception:
            log.exception("could not queue interrupted job %s again", job.id)
        interrupted = job.ended(JobStatus.FAILED, INTERRUPTED)
        await self._finish(interrupted.dead_lettered(DeadLetterReason.INTERRUPTED))

    def _on_expiry(self, entry: Entry) -> None:
        """A held or delayed job reached its maximum age (a timer of the waiting room)."""
        self._spawn(self._expire(entry.job, entry.tool))

    async def _expire(self, job: Job, tool: Tool | None, *, stop_call: bool = True) -> None:
        age = (utcnow() - job.created_at).total_seconds()
        message = (
            f"expired: still queued {age:.3g}s after it was created (maximum age "
            f"{self.room.max_age(tool):g}s), so it was not run"
        )
        if job.attempts:
            message += " again"
        expired = job.ended(JobStatus.FAILED, message)
        await self._end_waiting(job, expired.dead_lettered(DeadLetterReason.EXPIRED), stop_call)

    async def _end_waiting(self, job: Job, final: Job, stop_call: bool = True) -> bool:
        """End a job that has not started (cancelled or expired) wherever it waits; False if
        it is no longer queued (it started, or something else ended it first)."""
        if not await self._db_call(self.jobs.save_if, final, JobStatus.QUEUED):
            return False
        self.room.remove(job.id)
        self._notify(final)
        waiting = self._calls.get(job.id)  # it may be waiting for a free worker
        if stop_call and waiting is not None:
            waiting.cancel()
        return True

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- queries and control ---------------------------------------------------------------

    def _with_live_progress(self, job: Job) -> Job:
        live = self._live_progress.get(job.id)
        if live is None or job.status != JobStatus.RUNNING:
            return job
        return job.evolve(progress=live)

    async def get(self, job_id: str) -> Job:
        unwritten = self._recorder.unwritten(job_id)
        if unwritten is not None:
            return unwritten
        return self._with_live_progress(await self._db_call(self.jobs.get, job_id))

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

    async def events(self, job_id: str) -> AsyncGenerator[dict[str, Any], None]:
        """``snapshot``, then ``running`` / ``progress`` / ``retrying`` as they happen, then
        ``finished`` (see ``docs/jobs.md``); a job that had ended: ``snapshot``, ``finished``."""
        with self.feed.subscribe(job_id) as queue:
            job = await self.get(job_id)  # subscribed first, so nothing in between is missed
            yield {
                "event": "snapshot",
                "uuid": job.id,
                "status": job.status.value,
                "job": job.to_dict(),
            }
            while not job.status.final:
                try:
                    event = await asyncio.wait_for(queue.get(), EVENTS_POLL_S)
                except TimeoutError:  # nothing heard: another process may be running it
                    job = await self.get(job_id)
                    continue
                yield event
                if event["event"] == "finished":
                    return
            yield finished_event(job)

    async def cancel(self, job_id: str) -> Job:
        job = await self.get(job_id)
        if job.status == JobStatus.QUEUED:  # waiting: for a dispatcher, its tool, a worker
            cancelled = job.ended(JobStatus.CANCELLED, CANCELLED)  # or a retry
            if await self._end_waiting(job, cancelled):
                return cancelled
            job = await self.get(job_id)  # it started meanwhile
        if job.status == JobStatus.RUNNING and job_id in self._running:
            call = self._calls.get(job_id)
            if call is not None:
                call.cancel()
            else:  # between "running" being stored and the call starting (or after it ended)
                self._cancel_requested.add(job_id)
            return await self.wait(job_id)
        if job.status.final:
            raise JobAlreadyFinished(f"job {job_id} has already ended ({job.status.value})")
        raise JobAlreadyFinished(f"job {job_id} is {job.status.value} in another process")

    # -- the dead-letter list --------------------------------------------------------------

    async def dead_letters(
        self,
        *,
        reason: DeadLetterReason | None = None,
        tool_id: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        await self._recorder.flush()
        return await self._db_call(
            lambda: self.jobs.dead_letters(reason=reason, tool_id=tool_id, limit=limit)
        )

    async def retry(self, job_id: str) -> Job:
        await self._recorder.flush()
        dead = await self.get(job_id)
        if dead.dead_letter_reason is None:
            raise self._not_dead(dead)
        # Today's tool and schema: a retry of a call the tool no longer accepts is refused.
        tool, merged = await self.prepare(dead.tool_id, dead.arguments)
        job = self._new_job(tool, merged, retry_of=dead.id)

        def write() -> tuple[Job, bool]:
            if not self.jobs.requeue_dead(dead.id, job):  # another retry took it first
                raise self._not_dead(dead.evolve(dead_letter_reason=None))
            return job, True

        return await self._enqueue(job, tool, write=write)

    @staticmethod
    def _not_dead(job: Job) -> NotDeadLettered:
        return not_dead_lettered(job)

    async def forget_dead(
        self,
        job_id: str | None = None,
        *,
        reason: DeadLetterReason | None = None,
        tool_id: str | None = None,
    ) -> int:
        await self._recorder.flush()
        removed = await self._db_call(
            lambda: self.jobs.forget_dead(job_id, reason=reason, tool_id=tool_id)
        )
        if job_id is not None and not removed:
            raise self._not_dead(await self.get(job_id))  # NotFound if there is no such job
        return removed

    def stats(self) -> dict[str, Any]:
        waiting = self._room.stats() if self._room else {"queued": 0, "held": 0, "delayed": 0}
        return {
            **waiting,
            "running": len(self._running),
            "concurrency": self.concurrency,
            "queue_size": self.settings.queue_size,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
