"""Job events between processes: Redis pub/sub, with the store as the source of truth.

Workers publish a job's lifecycle (``running``, ``queued`` again for a retry, its final
status) and its tool's progress reports on ``<queue>.<db>.jobs``; an API process that cancels
a running job publishes on ``<queue>.<db>.control``, where workers listen. Every API replica
hears every job event, so the one that holds a client's WebSocket (or a job's event stream)
answers it, whichever worker ran the job.

Pub/sub forgets what it could not deliver, so an event only says *look now*: the job itself is
read from the store, and :class:`JobWatch` also reads the store for every job it waits on
after each (re)subscription and every ``poll_s`` seconds. A message lost while Redis restarts
costs a waiter a moment, never its answer. The listener reconnects by itself, with backoff.

Leases (:class:`Leases`) live in the same Redis: a worker claims a job before running it and
renews the claim while it runs, so another worker can tell a job whose worker died (claim
lapsed: take it over) from one that is still running (leave it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from toolrun.errors import InfrastructureError
from toolrun.execution.jobs import JobStatus

log = logging.getLogger(__name__)

EventKind = Literal["status", "progress", "cancel", "resync"]
RECONNECT_MAX_S = 2.0


@dataclass(frozen=True)
class JobEvent:
    """``status``: the job moved (read it from the store); ``progress``: a report of its tool;
    ``cancel``: stop it if you run it; ``resync``: (re)subscribed, events may have been
    missed, look at the store. ``data``, when present, is the event as job streams show it
    (``running``, ``retrying``, ``progress``; see ``docs/jobs.md``)."""

    kind: EventKind
    job_id: str = ""
    status: JobStatus | None = None
    data: dict[str, Any] | None = None

    def encode(self) -> str:
        raw: dict[str, Any] = {"k": self.kind, "id": self.job_id, "s": self.status}
        if self.data is not None:
            raw["d"] = self.data
        return json.dumps(raw)

    @classmethod
    def decode(cls, raw: str | bytes) -> JobEvent:
        data = json.loads(raw)
        status = JobStatus(data["s"]) if data.get("s") else None
        extra = data.get("d")
        if extra is not None and not isinstance(extra, dict):
            raise ValueError("an event's data must be an object")
        return cls(kind=data["k"], job_id=str(data["id"]), status=status, data=extra)


RESYNC = JobEvent("resync")


def _redis_client(url: str) -> Any:
    try:
        import redis.asyncio as aioredis
    except ImportError:  # pragma: no cover - depends on the installation
        raise InfrastructureError(
            "the celery executor needs Redis for job events: pip install 'toolrun[celery]'"
        ) from None
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError, TimeoutError

    return aioredis.from_url(
        url,
        socket_connect_timeout=5,
        socket_keepalive=True,
        health_check_interval=10,
        decode_responses=True,
        # A connection left over from before a Redis restart fails once: retry on a new one.
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
        retry_on_error=[ConnectionError, TimeoutError, OSError],
    )


def _channel_prefix(url: str, namespace: str) -> str:
    """Pub/sub ignores Redis database numbers; the prefix carries it, as kombu's does."""
    from urllib.parse import urlparse

    db = (urlparse(url).path or "/0").strip("/") or "0"
    return f"{namespace}.{db}"


class EventBus:
    """Publishes and delivers :class:`JobEvent`\\ s; see the module docstring."""

    def __init__(self, url: str, namespace: str) -> None:
        self.url = url
        prefix = _channel_prefix(url, namespace)
        self.jobs_channel = f"{prefix}.jobs"
        self.control_channel = f"{prefix}.control"
        self.lease_prefix = f"{namespace}:lease:"
        self.limit_prefix = f"{namespace}:limit:"
        self.client: Any = _redis_client(url)
        self._listener: asyncio.Task[None] | None = None
        self._subscribers: dict[str | None, set[asyncio.Queue[JobEvent]]] = {}
        self.connected = asyncio.Event()

    # -- publishing ------------------------------------------------------------------------

    async def publish(self, event: JobEvent) -> bool:
        """Send ``event``; False (logged) when Redis cannot be reached: the store still has
        the truth and waiters will read it."""
        channel = self.control_channel if event.kind == "cancel" else self.jobs_channel
        try:
            await self.client.publish(channel, event.encode())
        except Exception as exc:  # redis errors, OSError: the fallback covers it
            log.warning("could not publish %s event of job %s: %s", event.kind, event.job_id, exc)
            return False
        return True

    async def status(
        self, job_id: str, status: JobStatus, data: dict[str, Any] | None = None
    ) -> bool:
        return await self.publish(JobEvent("status", job_id, status, data))

    async def progress(self, job_id: str, data: dict[str, Any]) -> bool:
        return await self.publish(JobEvent("progress", job_id, data=data))

    async def cancel(self, job_id: str) -> bool:
        return await self.publish(JobEvent("cancel", job_id))

    # -- listening -------------------------------------------------------------------------

    def listen(self, channels: Iterable[str]) -> None:
        """Start delivering events of ``channels`` to subscribers (reconnecting forever)."""
        if self._listener is None:
            wanted = list(channels)
            self._listener = asyncio.create_task(self._listen(wanted), name="toolrun-events")

    @contextlib.asynccontextmanager
    async def subscribe(self, job_id: str | None = None) -> AsyncIterator[asyncio.Queue[JobEvent]]:
        """A queue of the events of one job (or of all, with None), and every ``resync``."""
        queue: asyncio.Queue[JobEvent] = asyncio.Queue()
        self._subscribers.setdefault(job_id, set()).add(queue)
        try:
            yield queue
        finally:
            subscribers = self._subscribers.get(job_id)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[job_id]

    def _deliver(self, event: JobEvent) -> None:
        targets = [*self._subscribers.get(None, ())]
        if event.kind == "resync":
            targets = [q for qs in self._subscribers.values() for q in qs]
        else:
            targets.extend(self._subscribers.get(event.job_id, ()))
        for queue in targets:
            queue.put_nowait(event)

    async def _listen(self, channels: list[str]) -> None:
        delay = 0.05
        while True:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(*channels)
                async for message in pubsub.listen():
                    if message["type"] == "subscribe":
                        if int(message["data"]) < len(channels):
                            continue  # one confirmation per channel: wait for the last
                        # (Re)subscribed: anything published meanwhile was lost to us.
                        self.connected.set()
                        delay = 0.05
                        self._deliver(RESYNC)
                    elif message["type"] == "message":
                        try:
                            event = JobEvent.decode(message["data"])
                        except (ValueError, KeyError, TypeError):
                            log.warning("ignoring a malformed job event: %r", message["data"])
                            continue
                        self._deliver(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection lost: Redis restarting, network
                if self.connected.is_set():
                    log.warning("job events: lost Redis (%s); reconnecting", exc)
                self.connected.clear()
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        with contextlib.suppress(Exception):
            await self.client.aclose()


class JobWatch:
    """Futures for the jobs this process waits on, resolved by ``status`` events and, as the
    fallback, by reading the stored statuses of all of them in one query after every
    ``resync`` and every ``poll_s`` seconds."""

    def __init__(
        self,
        bus: EventBus,
        statuses: Callable[[list[str]], Awaitable[dict[str, JobStatus]]],
        poll_s: float = 2.0,
    ) -> None:
        self.bus = bus
        self._statuses = statuses
        self.poll_s = poll_s
        self._futures: dict[str, set[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="toolrun-job-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @property
    def watched(self) -> int:
        """How many jobs are waited on."""
        return len(self._futures)

    def watch(self, job_id: str) -> asyncio.Future[None]:
        """A future resolved once ``job_id`` may have reached a final status."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._futures.setdefault(job_id, set()).add(future)
        return future

    def unwatch(self, job_id: str, future: asyncio.Future[None]) -> None:
        futures = self._futures.get(job_id)
        if futures is not None:
            futures.discard(future)
            if not futures:
                del self._futures[job_id]

    def _resolve(self, job_id: str) -> None:
        for future in self._futures.pop(job_id, ()):
            if not future.done():
                future.set_result(None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        async with self.bus.subscribe() as events:
            next_poll = loop.time() + self.poll_s
            while True:
                try:
                    event = await asyncio.wait_for(events.get(), next_poll - loop.time())
                except TimeoutError:
                    event = RESYNC  # every poll_s, however busy the channel: look anyway
                if event.kind == "status" and event.status is not None and event.status.final:
                    self._resolve(event.job_id)
                elif event.kind == "resync":
                    if self._futures:
                        await self._poll()
                    next_poll = loop.time() + self.poll_s

    async def _poll(self) -> None:
        try:
            statuses = await self._statuses(list(self._futures))
        except Exception as exc:  # the store is down: try again at the next tick
            log.warning("could not read the status of awaited jobs: %s", exc)
            return
        for job_id, status in statuses.items():
            if status.final:
                self._resolve(job_id)


class Leases:
    """A worker's claims on jobs: ``SET NX PX`` to claim, renewed and released only by the
    owner (checked in Redis by a script). A method that cannot reach Redis returns None."""

    _RENEW = """
    if redis.call('get', KEYS[1]) == ARGV[1] then
        return redis.call('pexpire', KEYS[1], ARGV[2])
    end
    return 0
    """
    _RELEASE = """
    if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
    return 0
    """

    def __init__(self, bus: EventBus, owner: str, ttl_s: float) -> None:
        self.client = bus.client
        self.prefix = bus.lease_prefix
        self.owner = owner
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self._renew = self.client.register_script(self._RENEW)
        self._release = self.client.register_script(self._RELEASE)

    async def claim(self, job_id: str) -> bool | None:
        """True: the job is ours; False: another live worker holds it."""
        try:
            done = await self.client.set(self.prefix + job_id, self.owner, nx=True, px=self.ttl_ms)
        except Exception as exc:
            log.warning("could not claim job %s: %s", job_id, exc)
            return None
        return bool(done)

    async def renew(self, job_id: str) -> bool | None:
        """Extend our claim; after a Redis restart (claim gone) claim it again."""
        try:
            if await self._renew(keys=[self.prefix + job_id], args=[self.owner, self.ttl_ms]):
                return True
        except Exception as exc:
            log.warning("could not renew the claim on job %s: %s", job_id, exc)
            return None
        return await self.claim(job_id)

    async def release(self, job_id: str) -> None:
        try:
            await self._release(keys=[self.prefix + job_id], args=[self.owner])
        except Exception as exc:  # it lapses by itself
            log.warning("could not release the claim on job %s: %s", job_id, exc)
