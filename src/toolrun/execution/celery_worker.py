"""The worker side of the Celery executor: run one job by id, exactly one result per job.

A ``toolrun worker`` process holds one :class:`JobWorker`: an asyncio loop in a thread with
the same :class:`~toolrun.execution.runner.ToolRunner` (and worker-process pool) the embedded
executor uses, the shared store, the event bus, the worker's leases and the tools' shared
limits (:mod:`toolrun.execution.celery_limits`). Celery's threads call
:meth:`JobWorker.handle` with a job id and act on what it answers.

A delivery of job ``J``::

    claim J's lease ──▶ read J ──▶ final?            done (a duplicate delivery does nothing)
                                   running, held:    a live worker has it: busy, ask again later
                                   running, claimed: its worker died (the claim lapsed): a
                                                     failed attempt; queued again if the tool
                                                     allows another, else failed, interrupted
                                   queued:           expired? fail it unrun (dead letter)
                                                     not due (a retry's backoff)? send it again
                                                     held by its tool's limits? send it again
                                                     else run it; stored running when the call
                                                     starts (compare-and-set from queued)

A job sent again (:class:`Deferred`) stays ``queued`` and takes no thread meanwhile: its
task comes back after a countdown. An attempt that ends with an error result, a time limit or
a crashed tool process is retried the same way when the tool's ``policy.retry`` allows it
(stored ``queued`` with ``next_attempt_at``, a ``retrying`` event published); otherwise the
job ends and, failed or timed out, is dead-lettered with the embedded executor's reasons.

The final job is written with a compare-and-set from ``running``, so of two runs (a takeover
racing a worker thought dead) one result is kept and announced, never two. Delivery is
therefore *at least once*: a job whose worker died mid-call may run again from the start.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from toolrun.config import Settings
from toolrun.errors import NotFound, ToolrunError
from toolrun.execution.celery_limits import ToolLimits, limited
from toolrun.execution.celery_progress import ProgressRelay
from toolrun.execution.events import EventBus, JobEvent, Leases
from toolrun.execution.jobs import DeadLetterReason, Job, JobStatus, utcnow
from toolrun.execution.pool import WorkerPool
from toolrun.execution.runner import ToolRunner
from toolrun.execution.submission import CallPreparer, expired, max_age, next_attempt, time_limit
from toolrun.execution.tool_cache import ToolCache
from toolrun.registry.tool import Tool
from toolrun.response import Response
from toolrun.storage.engine import make_engine, upgrade
from toolrun.storage.job_store import JobStore
from toolrun.storage.tool_store import ToolStore

log = logging.getLogger(__name__)
T = TypeVar("T")
CANCELLED = "cancelled by request"
WORKER_LOST = "interrupted: its worker stopped while this job was running"
STORE_RETRIES_S = (0.2, 0.5, 1.0, 2.0, 4.0)  # keeping a finished result through a store blip
LATER_BACKOFF_S = 1.0
DEFER_MAX_S = 300.0


class Outcome(enum.Enum):
    DONE = "done"
    """The delivery is finished with (ran, or nothing to do): acknowledge it."""
    BUSY = "busy"
    """A live worker runs the job: deliver again after a while (it may still die)."""
    LATER = "later"
    """The store or Redis could not be reached: give the message back to the broker."""


@dataclass(frozen=True)
class Deferred:
    """The job stays ``queued``: send its task again in ``countdown_s`` seconds (it waits for
    its next attempt, or for its tool's concurrency or rate limit)."""

    countdown_s: float


Verdict = Outcome | Deferred


class _NoLongerRunnable(Exception):
    """The job changed (cancelled, expired, taken over) before its call started."""


@dataclass
class _Attempt:
    job: Job
    answered: bool = False  # the tool itself answered (a failed answer may be retried)

    @property
    def started(self) -> bool:
        return self.job.status != JobStatus.QUEUED


class JobWorker:
    """See the module docstring. ``start``/``close`` from the thread that owns it."""

    def __init__(self, settings: Settings, *, owner: str) -> None:
        events_url = settings.resolved_events_url
        if events_url is None:
            raise ValueError("the celery worker needs TOOLRUN_EVENTS_URL or a Redis broker")
        self.settings = settings
        self.owner = owner
        self.engine = make_engine(
            settings.resolved_database_url, pool_size=settings.database_pool_size
        )
        self.tools = ToolStore(self.engine)
        self.jobs = JobStore(self.engine)
        self.runner = ToolRunner(settings, WorkerPool(settings.workers))
        self._events_url = events_url
        self._db = ThreadPoolExecutor(max_workers=8, thread_name_prefix="toolrun-db")
        self.runner.chain.bind(CallPreparer(settings, self.tools, self._db))  # chains' steps
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="toolrun-worker-loop")
        self._calls: dict[str, asyncio.Task[Response]] = {}
        self._handling: set[str] = set()
        self._tool_cache = ToolCache(settings.tool_cache_ttl_s)
        self._cancel_requested: set[str] = set()
        self._control: asyncio.Task[None] | None = None
        self.bus: EventBus
        self.leases: Leases
        self.limits: ToolLimits

    # -- lifecycle (called from another thread) ---------------------------------------------

    def start(self) -> None:
        upgrade(self.engine)
        self._thread.start()
        self._in_loop(self._start())

    async def _start(self) -> None:
        self.bus = EventBus(self._events_url, self.settings.celery_queue)
        self.leases = Leases(self.bus, self.owner, self.settings.job_lease_s)
        self.limits = ToolLimits(self.bus.client, self.bus.limit_prefix, self.settings.job_lease_s)
        self.bus.listen([self.bus.control_channel])
        self._control = asyncio.create_task(self._obey_cancels(), name="toolrun-cancels")
        await self.runner.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self._in_loop(self._close())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        self._db.shutdown(wait=True)
        self.engine.dispose()

    async def _close(self) -> None:
        if self._control is not None:
            self._control.cancel()
            await asyncio.gather(self._control, return_exceptions=True)
        await self.runner.close()
        await self.bus.close()

    def _in_loop(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def handle(self, job_id: str) -> Verdict:
        """One delivery of ``job_id``, from a Celery thread; blocks until it is dealt with."""
        verdict: Verdict = self._in_loop(self._handle(job_id))
        return verdict

    # -- one delivery ----------------------------------------------------------------------

    async def _db_call(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.loop.run_in_executor(self._db, fn, *args)

    async def _handle(self, job_id: str) -> Verdict:
        claimed = await self.leases.claim(job_id)
        try:
            job = await self._db_call(self.jobs.get, job_id)
        except NotFound:
            log.warning("job %s is not in the store; dropping its message", job_id)
            return await self._done_with(job_id, claimed, Outcome.DONE)
        except ToolrunError as exc:  # StoreError: the database is down
            log.warning("cannot read job %s (%s); giving it back to the broker", job_id, exc)
            await asyncio.sleep(LATER_BACKOFF_S)
            return await self._done_with(job_id, claimed, Outcome.LATER)
        if job.status.final:
            return await self._done_with(job_id, claimed, Outcome.DONE)
        if claimed is False:
            return Outcome.BUSY
        if claimed is None and job.status == JobStatus.RUNNING:
            await asyncio.sleep(LATER_BACKOFF_S)  # cannot tell whether its worker lives
            return Outcome.LATER
        self._handling.add(job_id)
        renewer = asyncio.create_task(self._keep_claim(job_id), name=f"toolrun-lease-{job_id}")
        try:
            return await self._deliver(job)
        finally:
            self._handling.discard(job_id)
            self._cancel_requested.discard(job_id)
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
            await self.leases.release(job_id)

    async def _tool(self, tool_id: str) -> Tool:
        """The job's tool, reused for ``tool_cache_ttl_s`` (as API processes do)."""
        generation = self._tool_cache.generation
        tool = self._tool_cache.get(tool_id)
        if tool is None:
            tool = await self._db_call(self.tools.get, tool_id)
            self._tool_cache.put(tool_id, tool, generation)
        return tool

    async def _done_with(self, job_id: str, claimed: bool | None, outcome: Outcome) -> Outcome:
        if claimed:
            await self.leases.release(job_id)
        return outcome

    async def _keep_claim(self, job_id: str) -> None:
        period = self.settings.job_lease_s / 3
        while True:
            await asyncio.sleep(period)
            if await self.leases.renew(job_id) is False:
                log.warning("another worker claimed job %s while this one runs it", job_id)
            await self.limits.renew(job_id)

    async def _deliver(self, job: Job) -> Verdict:
        """A claimed job that has not ended: see the module docstring."""
        try:
            tool = await self._tool(job.tool_id)
        except ToolrunError as exc:  # deleted since the job was queued, or the store is down
            if exc.status_code >= 500:
                await asyncio.sleep(LATER_BACKOFF_S)
                return Outcome.LATER
            final = job.ended(JobStatus.FAILED, exc.message)
            return await self._store_final(final.dead_lettered(DeadLetterReason.ERROR), job.status)
        if job.status == JobStatus.RUNNING:
            log.warning("job %s was left running by a dead worker", job.id)
            moved = await self._after_lost_worker(job, tool)
            if not isinstance(moved, Job):
                return moved
            job = moved
        gone = expired(job, max_age(self.settings, tool))
        if gone is not None:
            final = gone.dead_lettered(DeadLetterReason.EXPIRED)
            return await self._store_final(final, JobStatus.QUEUED)
        if job.next_attempt_at is not None:
            due_in = (job.next_attempt_at - utcnow()).total_seconds()
            if due_in > 0:
                return self._defer(job, tool, due_in)
        if not limited(tool):
            return await self._attempt(_Attempt(job), tool)
        wait = await self.limits.admit(tool, job.id)
        if wait is None:  # Redis is down: cannot tell whether the tool has room
            await asyncio.sleep(LATER_BACKOFF_S)
            return Outcome.LATER
        if wait > 0:
            return self._defer(job, tool, wait)
        attempt = _Attempt(job)
        try:
            return await self._attempt(attempt, tool)
        finally:
            await self.limits.done(tool, job.id, started=attempt.started)

    def _defer(self, job: Job, tool: Tool, seconds: float) -> Deferred:
        """Come back in ``seconds``, or sooner: when the job's maximum age passes (to expire
        it on time), and at least every ``DEFER_MAX_S`` or half the broker's visibility
        timeout (a Redis broker gives back a message held longer)."""
        countdown = min(seconds, DEFER_MAX_S, self.settings.broker_visibility_timeout_s / 2)
        limit = max_age(self.settings, tool)
        if limit is not None:
            to_deadline = limit - (utcnow() - job.created_at).total_seconds()
            countdown = min(countdown, max(to_deadline, 0.0) + 0.01)
        return Deferred(max(countdown, 0.0))

    async def _after_lost_worker(self, job: Job, tool: Tool) -> Job | Verdict:
        """A job whose worker died mid-call: its next attempt (the queued job) if the tool
        allows one, else it ends failed, interrupted (as after a restart of the embedded
        executor)."""
        if job.attempts < tool.policy.retry.max_attempts:
            waiting = next_attempt(job, tool, WORKER_LOST)
            stored = await self._save_if(waiting, JobStatus.RUNNING)
            if stored is None:
                return Outcome.LATER
            if not stored:
                return Outcome.DONE
            await self._announce_retry(job.evolve(error=WORKER_LOST), waiting)
            return waiting
        final = job.ended(JobStatus.FAILED, WORKER_LOST)
        return await self._store_final(
            final.dead_lettered(DeadLetterReason.INTERRUPTED), JobStatus.RUNNING
        )

    async def _attempt(self, attempt: _Attempt, tool: Tool) -> Verdict:
        """One attempt of a queued job that may start: its call, then its final state (or
        its next attempt)."""
        job = attempt.job
        relay = ProgressRelay(self.bus, job.id)

        async def mark_started() -> None:
            gone = expired(job, max_age(self.settings, tool))  # it waited for a tool process
            if gone is not None:
                final = gone.dead_lettered(DeadLetterReason.EXPIRED)
                if await self._db_call(self.jobs.save_if, final, JobStatus.QUEUED):
                    await self.bus.status(job.id, final.status)
                raise _NoLongerRunnable
            started = job.started()
            if not await self._db_call(self.jobs.save_if, started, JobStatus.QUEUED):
                raise _NoLongerRunnable
            attempt.job = started
            event = {
                "event": "running",
                "uuid": job.id,
                "attempt": started.attempts,
                "at": _iso(started.started_at),
            }
            await self.bus.status(job.id, JobStatus.RUNNING, event)

        timeout = job.timeout_s or time_limit(self.settings, tool)
        call = asyncio.create_task(
            self.runner.run(
                tool, job.arguments, timeout, on_start=mark_started, on_progress=relay.report
            )
        )
        self._calls[job.id] = call
        if job.id in self._cancel_requested:
            call.cancel()
        try:
            await asyncio.wait({call})
        finally:
            self._calls.pop(job.id, None)
            await relay.close()  # its last report is out before the job's next status
        final = self._outcome(attempt, call)
        if not isinstance(final, Job):
            return final
        if relay.last is not None:
            final = final.evolve(progress=relay.last)
        expected = JobStatus.RUNNING if attempt.started else JobStatus.QUEUED
        retry = tool.policy.retry
        if attempt.answered and final.status.dead and final.attempts < retry.max_attempts:
            return await self._retry_later(final, tool)
        reason = DeadLetterReason.EXHAUSTED if attempt.answered else DeadLetterReason.ERROR
        return await self._store_final(final.dead_lettered(reason), expected)

    def _outcome(self, attempt: _Attempt, call: asyncio.Task[Response]) -> Job | Verdict:
        """What the ended ``call`` makes of the job (or of this delivery)."""
        job = attempt.job
        if call.cancelled():
            if not attempt.started:
                return Outcome.DONE  # cancelled before it started: the API stored that
            return job.ended(JobStatus.CANCELLED, CANCELLED)
        error = call.exception()
        if isinstance(error, _NoLongerRunnable):
            return Outcome.DONE
        if isinstance(error, ToolrunError):
            if not attempt.started and error.status_code >= 500:
                log.warning("could not start job %s: %s", job.id, error.message)
                return Outcome.LATER  # the store is down: try again later
            return job.ended(JobStatus.FAILED, error.message)
        if error is not None:  # a bug in a runner: the job fails, the worker keeps serving
            log.error("runner failed on job %s", job.id, exc_info=error)
            message = f"internal error: {type(error).__name__}: {error}"
            return job.ended(JobStatus.FAILED, message)
        attempt.answered = True
        return job.answered(call.result())

    async def _retry_later(self, failed: Job, tool: Tool) -> Verdict:
        """``failed``'s attempt failed and the tool allows another: queued again, due after
        the backoff, and its task sent again for then."""
        waiting = next_attempt(failed, tool, failed.error or failed.status.value)
        stored = await self._save_if(waiting, JobStatus.RUNNING)
        if stored is None:  # the message comes back, finds the job running and unclaimed
            return Outcome.LATER
        if not stored:
            log.info("job %s already ended elsewhere; its retry is dropped", failed.id)
            return Outcome.DONE
        await self._announce_retry(failed, waiting)
        if failed.id in self._cancel_requested:  # cancelled while its attempt was ending
            cancelled = waiting.ended(JobStatus.CANCELLED, CANCELLED)
            return await self._store_final(cancelled, JobStatus.QUEUED)
        assert waiting.next_attempt_at is not None
        return self._defer(waiting, tool, (waiting.next_attempt_at - utcnow()).total_seconds())

    async def _announce_retry(self, failed: Job, waiting: Job) -> None:
        event = {
            "event": "retrying",
            "uuid": failed.id,
            "attempt": failed.attempts,
            "error": failed.error,
            "next_attempt_at": _iso(waiting.next_attempt_at),
        }
        await self.bus.status(failed.id, JobStatus.QUEUED, event)

    async def _save_if(self, job: Job, expected: JobStatus) -> bool | None:
        """:meth:`JobStore.save_if`, tried again through a store blip; None if it stayed
        unreachable."""
        for delay in (*STORE_RETRIES_S, None):
            try:
                return await self._db_call(self.jobs.save_if, job, expected)
            except ToolrunError as exc:
                if delay is None:
                    log.error("could not store job %s: %s", job.id, exc.message)
                    return None
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _store_final(self, final: Job, expected: JobStatus) -> Outcome:
        """Write the final job if it is still ``expected`` and announce it; a store failure is
        retried for a while, then the message goes back to the broker (the job runs again)."""
        stored = await self._save_if(final, expected)
        if stored is None:
            return Outcome.LATER
        if stored:
            await self.bus.status(final.id, final.status)
        else:
            log.info("job %s already ended elsewhere; result of this run dropped", final.id)
        return Outcome.DONE

    # -- cancellation ----------------------------------------------------------------------

    async def _obey_cancels(self) -> None:
        async with self.bus.subscribe() as events:
            while True:
                event: JobEvent = await events.get()
                if event.kind != "cancel" or event.job_id not in self._handling:
                    continue
                call = self._calls.get(event.job_id)
                if call is not None:
                    call.cancel()
                else:  # between the claim and the call
                    self._cancel_requested.add(event.job_id)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
