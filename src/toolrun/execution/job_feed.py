"""The events of this process's jobs, fanned out to whoever watches a job.

The embedded executor publishes a job's lifecycle (``running``, ``retrying``, ``finished``)
and its tool's progress reports here; the WebSocket and SSE streams subscribe per job. Events
are wire-ready dicts with an ``event`` key (see ``docs/jobs.md``). A subscriber that falls
behind by more than ``backlog`` events loses progress reports (never lifecycle events): a slow
client must not make the server hold an unbounded pile of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

Event = dict[str, Any]


class JobFeed:
    def __init__(self, backlog: int = 256) -> None:
        self.backlog = backlog
        self._subscribers: dict[str, set[asyncio.Queue[Event]]] = {}

    def watched(self, job_id: str) -> bool:
        return job_id in self._subscribers

    def publish(self, job_id: str, event: Event) -> None:
        queues = self._subscribers.get(job_id)
        if not queues:
            return
        droppable = event.get("event") == "progress"
        for queue in queues:
            if droppable and queue.qsize() >= self.backlog:
                continue
            queue.put_nowait(event)

    @contextmanager
    def subscribe(self, job_id: str) -> Iterator[asyncio.Queue[Event]]:
        """A queue of ``job_id``'s events from now on, for the ``with`` block."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.setdefault(job_id, set()).add(queue)
        try:
            yield queue
        finally:
            queues = self._subscribers.get(job_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._subscribers[job_id]
