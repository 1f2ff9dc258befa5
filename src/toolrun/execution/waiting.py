"""Where the embedded executor's jobs wait in memory before a dispatcher runs them.

::

    ready (priority queue) ──▶ dispatcher ── admit() ──▶ run
      ▲          ▲                 │ held at its tool's gate (concurrency, rate limit)
      │          └── its turn ─────┘
      └── delayed (a retry's backoff timer)

Held and delayed jobs take no dispatcher. A job the gate lets through goes to the front of the
ready queue (it already holds its tool's place). A held or delayed job whose maximum age
passes is handed to ``on_expiry`` by a timer; every job is also checked for age right before
it starts (:meth:`WaitingRoom.expired`). Everything here runs on the event loop, no locks.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from toolrun.execution.jobs import Job, utcnow
from toolrun.execution.limits import ToolGate
from toolrun.registry.tool import Tool

_ADMITTED, _NEW = 0, 1  # ready-queue priorities


@dataclass(eq=False)
class Entry:
    """A job on its way to a dispatcher; ``tool`` is None until resolved (a job recovered
    after a restart or waiting for a retry is read again, so changes to its tool apply)."""

    job: Job
    tool: Tool | None
    admitted: bool = False  # it holds a place at its tool's gate


class WaitingRoom:
    def __init__(
        self, on_expiry: Callable[[Entry], None], default_max_age_s: float | None = None
    ) -> None:
        self._on_expiry = on_expiry
        self.default_max_age_s = default_max_age_s
        self._ready: asyncio.PriorityQueue[tuple[int, int, Entry]] = asyncio.PriorityQueue()
        self._order = itertools.count()
        self._gate: ToolGate[Entry] = ToolGate(self._let_through)
        self._held: dict[str, Entry] = {}
        self._delayed: dict[str, tuple[Entry, asyncio.TimerHandle]] = {}
        self._expiry: dict[str, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        """Jobs waiting in memory (the executor's queue bound counts them)."""
        return self._ready.qsize() + len(self._held) + len(self._delayed)

    def stats(self) -> dict[str, int]:
        return {
            "queued": self._ready.qsize(),
            "held": len(self._held),
            "delayed": len(self._delayed),
        }

    def put(self, entry: Entry) -> None:
        priority = _ADMITTED if entry.admitted else _NEW
        self._ready.put_nowait((priority, next(self._order), entry))

    async def get(self) -> Entry:
        return (await self._ready.get())[2]

    def delay(self, entry: Entry, seconds: float) -> None:
        """Put ``entry`` in the ready queue after ``seconds`` (at once if none)."""
        if seconds <= 0:
            self.put(entry)
            return
        job_id = entry.job.id
        handle = asyncio.get_running_loop().call_later(seconds, self._undelay, job_id)
        self._delayed[job_id] = (entry, handle)
        self._arm_expiry(entry)

    def admit(self, entry: Entry) -> bool:
        """True: ``entry`` (whose tool is resolved) may start now; call :meth:`done` when its
        call ends. False: it is held and comes back through the ready queue in its turn."""
        assert entry.tool is not None
        policy = entry.tool.policy
        if self._gate.admit(entry.tool.id, policy.concurrency, policy.rate_limit, entry):
            entry.admitted = True
            return True
        self._held[entry.job.id] = entry
        self._arm_expiry(entry)
        return False

    def done(self, entry: Entry, *, started: bool = True) -> None:
        """An admitted entry's call has ended (or, ``started=False``, will not happen): its
        place goes to the next held job."""
        if entry.admitted and entry.tool is not None:
            entry.admitted = False
            self._gate.done(entry.tool.id, started=started)

    def waiting(self, job_id: str) -> Entry | None:
        """The held or delayed entry of ``job_id``, if it is one."""
        if job_id in self._held:
            return self._held[job_id]
        delayed = self._delayed.get(job_id)
        return delayed[0] if delayed is not None else None

    def remove(self, job_id: str) -> None:
        """Forget a held or delayed job (it was cancelled or expired), timers included."""
        self._disarm_expiry(job_id)
        delayed = self._delayed.pop(job_id, None)
        if delayed is not None:
            delayed[1].cancel()
        held = self._held.pop(job_id, None)
        if held is not None and held.tool is not None:
            self._gate.remove(held.tool.id, held)

    def close(self) -> None:
        self._gate.close()
        for handle in [*self._expiry.values(), *(h for _, h in self._delayed.values())]:
            handle.cancel()

    # -- maximum age -----------------------------------------------------------------------

    def max_age(self, tool: Tool | None) -> float | None:
        """The tool's ``policy.max_age_s``, else the server's default (None: no limit)."""
        if tool is not None and tool.policy.max_age_s is not None:
            return tool.policy.max_age_s
        return self.default_max_age_s

    def deadline(self, job: Job, tool: Tool | None) -> datetime | None:
        max_age = self.max_age(tool)
        return None if max_age is None else job.created_at + timedelta(seconds=max_age)

    def expired(self, job: Job, tool: Tool) -> bool:
        deadline = self.deadline(job, tool)
        return deadline is not None and utcnow() >= deadline

    # -- internals -------------------------------------------------------------------------

    def _undelay(self, job_id: str) -> None:
        delayed = self._delayed.pop(job_id, None)
        if delayed is not None:
            self._disarm_expiry(job_id)
            self.put(delayed[0])

    def _let_through(self, entry: Entry) -> None:
        """The gate's release: a held job may start now (it holds its place already)."""
        self._held.pop(entry.job.id, None)
        self._disarm_expiry(entry.job.id)
        entry.admitted = True
        self.put(entry)

    def _arm_expiry(self, entry: Entry) -> None:
        deadline = self.deadline(entry.job, entry.tool)
        if deadline is None:
            return
        delay = max((deadline - utcnow()).total_seconds(), 0)
        loop = asyncio.get_running_loop()
        self._expiry[entry.job.id] = loop.call_later(delay, self._expire, entry.job.id)

    def _disarm_expiry(self, job_id: str) -> None:
        handle = self._expiry.pop(job_id, None)
        if handle is not None:
            handle.cancel()

    def _expire(self, job_id: str) -> None:
        self._expiry.pop(job_id, None)
        entry = self.waiting(job_id)
        if entry is not None:
            self._on_expiry(entry)
