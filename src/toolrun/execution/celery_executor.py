"""The scale-out executor of API processes: jobs go to Celery, ``toolrun worker``\\ s run them.

``submit`` validates the call here (a bad call is a 4xx at once, as with the embedded
executor), stores the job ``queued`` and sends its task (task id = job id); a job whose task
cannot be sent is stored ``failed`` and the caller gets a 503. ``wait`` hears the job's end
over Redis pub/sub (:mod:`toolrun.execution.events`) and reads it from the shared store; it
never depends on a message arriving. No worker pool runs here. The job semantics of
``docs/jobs.md`` hold as with the embedded executor: idempotency keys (one job per key,
settled by the store's unique index, whichever replica is asked), the dead-letter list (read
and changed in the shared store; a retry is a new job sent like any other), and job event
streams (:meth:`CeleryExecutor.events` relays what workers publish: ``running``, ``progress``,
``retrying``). Retries, maximum age and per-tool limits are applied by the workers
(:mod:`toolrun.execution.celery_worker`).

A replica that crashes between storing a job and sending its task leaves the job ``queued``
with no message; every replica therefore sends again, when it starts, the task of each job
still ``queued`` from before: a task whose job has already run finds it ended and does
nothing, so this costs a duplicate message, never a second run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from toolrun.config import Settings
from toolrun.errors import InfrastructureError, JobAlreadyFinished
from toolrun.execution.base import Executor, finished_event, not_dead_lettered
from toolrun.execution.celery_app import make_celery_app, send_job
from toolrun.execution.celery_worker import CANCELLED
from toolrun.execution.events import EventBus, JobWatch
from toolrun.execution.idempotency import check_key, request_hash, same_request
from toolrun.execution.jobs import DeadLetterReason, Job, JobStatus
from toolrun.execution.submission import CallPreparer, time_limit
from toolrun.storage.job_store import JobStore
from toolrun.storage.tool_store import ToolStore

log = logging.getLogger(__name__)
T = TypeVar("T")
CANCEL_GRACE_S = 10.0
"""How long a cancelled running job's worker has to stop it before the API ends it itself."""
STREAM_BACKLOG = 256
"""Events an event stream may fall behind by before it skips progress reports (as JobFeed)."""


class CeleryExecutor(Executor):
    def __init__(self, settings: Settings, tools: ToolStore, jobs: JobStore) -> None:
        events_url = settings.resolved_events_url
        if events_url is None:
            raise ValueError("executor=celery needs TOOLRUN_EVENTS_URL or a Redis broker")
        self.settings = settings
        self.tools = tools
        self.jobs = jobs
        self._events_url = events_url
        db_threads = 1 if tools.dialect == "sqlite" else 8
        self._db = ThreadPoolExecutor(max_workers=db_threads, thread_name_prefix="toolrun-db")
        self.preparer = CallPreparer(settings, tools, self._db)
        self.app = make_celery_app(settings)
        self._bus: EventBus | None = None
        self._watch: JobWatch | None = None
        self._resender: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Future[Job]] = set()

    async def _db_call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    @property
    def bus(self) -> EventBus:
        if self._bus is None:
            raise RuntimeError("the executor is not started")
        return self._bus

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._bus = EventBus(self._events_url, self.settings.celery_queue)
        self._bus.listen([self._bus.jobs_channel])
        self._watch = JobWatch(self._bus, lambda ids: self._db_call(self.jobs.statuses, ids))
        self._watch.start()
        self._resender = asyncio.create_task(self._resend_queued(), name="toolrun-resend")

    async def _resend_queued(self) -> None:
        """Send again the task of every job still queued (see the module docstring)."""
        try:
            queued = await self._db_call(self.jobs.queued_ids)
        except Exception as exc:
            log.error("could not read the queued jobs to send their tasks again: %s", exc)
            return
        if not queued:
            return
        log.info("sending again the tasks of %d job(s) still queued", len(queued))
        for job_id in queued:
            try:
                await self._db_call(send_job, self.app, self.settings, job_id)
            except Exception as exc:
                log.error("could not send the task of queued job %s: %s", job_id, exc)

    async def close(self) -> None:
        if self._resender is not None:
            self._resender.cancel()
            await asyncio.gather(self._resender, return_exceptions=True)
        if self._sending:  # jobs being stored and sent finish first: none is half-queued
            await asyncio.gather(*self._sending, return_exceptions=True)
        if self._watch is not None:
            await self._watch.close()
        if self._bus is not None:
            await self._bus.close()
        self._db.shutdown(wait=True)
        await asyncio.to_thread(self.app.close)

    # -- submission ------------------------------------------------------------------------

    async def submit(self, tool_ref: str, arguments: dict[str, Any] | None = None) -> Job:
        job = await self._new_job(tool_ref, arguments)
        await self._send(job)
        return job

    async def submit_with_key(
        self, tool_ref: str, arguments: dict[str, Any] | None, idempotency_key: str
    ) -> Job:
        key = check_key(idempotency_key)
        digest = request_hash(tool_ref, arguments)
        existing = await self._db_call(self.jobs.get_by_key, key)
        if existing is not None:
            return same_request(existing, digest)
        job = await self._new_job(tool_ref, arguments)
        stored = await self._send(job.evolve(idempotency_key=key, request_hash=digest))
        return same_request(stored, digest)  # another replica may have won the key

    async def _new_job(self, tool_ref: str, arguments: dict[str, Any] | None, **fields: Any) -> Job:
        tool, merged = await self.preparer.prepare(tool_ref, arguments)
        limit = time_limit(self.settings, tool)
        return Job(tool_id=tool.id, arguments=merged, timeout_s=limit, **fields)

    async def _send(self, job: Job, write: Callable[[Job], tuple[Job, bool]] | None = None) -> Job:
        """Store ``job`` and send its task; returns the stored job (for a job with an
        idempotency key, the one that already held the key, if any: then nothing is sent).
        ``write`` (run in a database thread) stores it and says whether it did, instead of
        an insert. Once storing starts, the job is sent even if the caller goes away."""
        store_and_send = functools.partial(self._store_and_send, job, write or self._insert)
        sending = asyncio.ensure_future(self._db_call(store_and_send))
        self._sending.add(sending)
        sending.add_done_callback(self._sending.discard)
        return await asyncio.shield(sending)

    def _insert(self, job: Job) -> tuple[Job, bool]:
        if job.idempotency_key is None:
            self.jobs.add(job)
            return job, True
        return self.jobs.add_unique(job)

    def _store_and_send(self, job: Job, write: Callable[[Job], tuple[Job, bool]]) -> Job:
        stored, inserted = write(job)
        if not inserted:
            return stored
        try:
            send_job(self.app, self.settings, job.id)
        except Exception as exc:
            message = f"the job could not be queued: broker unreachable ({type(exc).__name__})"
            log.error("job %s: %s: %s", job.id, message, exc)
            try:
                self.jobs.save_if(job.ended(JobStatus.FAILED, message), JobStatus.QUEUED)
            except Exception:
                log.exception("could not store job %s as failed", job.id)
            raise InfrastructureError(message) from None
        return job

    async def invoke(self, tool_ref: str, arguments: dict[str, Any] | None = None) -> Job:
        job = await self._new_job(tool_ref, arguments)
        watch = self._require_watch()
        ended = watch.watch(job.id)  # before the job exists: its end cannot be missed
        try:
            await self._send(job)
            await asyncio.shield(ended)
            return await self.get(job.id)
        finally:
            watch.unwatch(job.id, ended)

    # -- waiting and queries ---------------------------------------------------------------

    def _require_watch(self) -> JobWatch:
        if self._watch is None:
            raise RuntimeError("the executor is not started")
        return self._watch

    async def wait(self, job_id: str, timeout_s: float | None = None) -> Job:
        watch = self._require_watch()
        ended = watch.watch(job_id)
        try:
            job = await self.get(job_id)  # watched first, so an end in between is seen
            if job.status.final:
                return job
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(ended), timeout_s)
            return await self.get(job_id)
        finally:
            watch.unwatch(job_id, ended)

    async def get(self, job_id: str) -> Job:
        return await self._db_call(self.jobs.get, job_id)

    async def list_jobs(
        self, *, status: JobStatus | None = None, tool_id: str | None = None, limit: int = 100
    ) -> list[Job]:
        return await self._db_call(
            lambda: self.jobs.recent(status=status, tool_id=tool_id, limit=limit)
        )

    async def cancel(self, job_id: str) -> Job:
        """A queued job (waiting for a worker, its next attempt or its tool's limits) is
        stored cancelled here; a running one is stopped by its worker, or ended here if that
        worker does not answer within ``CANCEL_GRACE_S``."""
        job = await self.get(job_id)
        for _ in range(3):  # the job may move between reading and writing it
            if job.status.final:
                break
            if job.status == JobStatus.QUEUED:
                cancelled = job.ended(JobStatus.CANCELLED, CANCELLED)
                if await self._db_call(self.jobs.save_if, cancelled, JobStatus.QUEUED):
                    await self.bus.status(job_id, JobStatus.CANCELLED)
                    await self.bus.cancel(job_id)  # a worker may hold it, waiting for a slot
                    return cancelled
                job = await self.get(job_id)  # it started meanwhile
                continue
            await self.bus.cancel(job_id)
            job = await self.wait(job_id, CANCEL_GRACE_S)
            if job.status.final:
                return job
            if job.status == JobStatus.RUNNING:
                # Its worker did not answer (gone, or cut off): end the job here; a result the
                # worker may still produce finds it ended and is dropped.
                cancelled = job.ended(JobStatus.CANCELLED, CANCELLED)
                if await self._db_call(self.jobs.save_if, cancelled, JobStatus.RUNNING):
                    await self.bus.status(job_id, JobStatus.CANCELLED)
                    return cancelled
                job = await self.get(job_id)
        if not job.status.final:
            raise JobAlreadyFinished(f"job {job_id} kept changing; cancel it again")
        raise JobAlreadyFinished(f"job {job_id} has already ended ({job.status.value})")

    async def events(self, job_id: str) -> AsyncGenerator[dict[str, Any], None]:
        """``snapshot``, then what the job's worker publishes (``running``, ``progress``,
        ``retrying``), then ``finished``: the shapes of the embedded executor. A lost message
        costs an event in between, never the end, which :class:`JobWatch` also learns from
        the store (see :meth:`wait`)."""
        watch = self._require_watch()
        ended = watch.watch(job_id)  # before the snapshot: an end in between is seen
        try:
            async with self.bus.subscribe(job_id) as heard:
                job = snapshot = await self.get(job_id)
                yield {
                    "event": "snapshot",
                    "uuid": job.id,
                    "status": job.status.value,
                    "job": job.to_dict(),
                }
                while not job.status.final:
                    next_event = asyncio.ensure_future(heard.get())
                    either: set[asyncio.Future[Any]] = {next_event, ended}
                    try:
                        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        if not next_event.done():
                            next_event.cancel()
                    heard_now = [next_event.result()] if next_event.done() else []
                    while not heard.empty():
                        heard_now.append(heard.get_nowait())
                    if len(heard_now) > STREAM_BACKLOG:  # a slow client loses progress reports
                        heard_now = [e for e in heard_now if e.kind != "progress"]
                    for event in heard_now:
                        if event.data is not None and not _already_shown(event.data, snapshot):
                            yield event.data
                    if ended.done():
                        job = await self.get(job_id)
                        if not job.status.final:  # cannot happen; watch it again if it does
                            watch.unwatch(job_id, ended)
                            ended = watch.watch(job_id)
                yield finished_event(job)
        finally:
            watch.unwatch(job_id, ended)

    # -- the dead-letter list --------------------------------------------------------------

    async def dead_letters(
        self,
        *,
        reason: DeadLetterReason | None = None,
        tool_id: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        return await self._db_call(
            lambda: self.jobs.dead_letters(reason=reason, tool_id=tool_id, limit=limit)
        )

    async def retry(self, job_id: str) -> Job:
        dead = await self.get(job_id)
        if dead.dead_letter_reason is None:
            raise not_dead_lettered(dead)
        # Today's tool and schema: a retry of a call the tool no longer accepts is refused.
        job = await self._new_job(dead.tool_id, dead.arguments, retry_of=dead.id)

        def write(new: Job) -> tuple[Job, bool]:
            if not self.jobs.requeue_dead(dead.id, new):  # another retry took it first
                raise not_dead_lettered(dead.evolve(dead_letter_reason=None))
            return new, True

        return await self._send(job, write)

    async def forget_dead(
        self,
        job_id: str | None = None,
        *,
        reason: DeadLetterReason | None = None,
        tool_id: str | None = None,
    ) -> int:
        removed = await self._db_call(
            lambda: self.jobs.forget_dead(job_id, reason=reason, tool_id=tool_id)
        )
        if job_id is not None and not removed:
            raise not_dead_lettered(await self.get(job_id))  # NotFound if there is no such job
        return removed

    def stats(self) -> dict[str, Any]:
        return {
            "kind": "celery",
            "queue": self.settings.celery_queue,
            "events": "connected" if self._bus and self._bus.connected.is_set() else "down",
            "waiting": self._watch.watched if self._watch else 0,
            "sending": len(self._sending),
        }


def _already_shown(event: dict[str, Any], snapshot: Job) -> bool:
    """A ``running`` or ``retrying`` event the stream's snapshot already showed (a worker
    stores a move before it publishes it, so a stream may read the one and hear the other)."""
    attempt = event.get("attempt")
    if not isinstance(attempt, int):
        return False
    if attempt != snapshot.attempts:
        return attempt < snapshot.attempts
    if event["event"] == "running":
        return snapshot.status != JobStatus.QUEUED
    return event["event"] == "retrying" and snapshot.status == JobStatus.QUEUED
