"""A running job's progress reports, from a ``toolrun worker`` to every API replica.

The worker's :class:`~toolrun.execution.runner.ToolRunner` hands each report of the tool to
:meth:`ProgressRelay.report` (on the worker's loop); the relay checks it again
(:func:`toolrun.progress.parse`), remembers the last one (stored on the job when the attempt
ends) and publishes it on the event bus as the ``progress`` event of job streams. A tool that
reports faster than one per ``interval_s`` is thinned: the latest report wins, and the last
one is always published (by :meth:`ProgressRelay.close`, before the job's next status), so a
flood costs the bus at most ``1 / interval_s`` messages a second per job.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from toolrun import progress
from toolrun.execution.events import EventBus
from toolrun.execution.jobs import utcnow

PROGRESS_INTERVAL_S = 0.1


class ProgressRelay:
    def __init__(self, bus: EventBus, job_id: str, interval_s: float = PROGRESS_INTERVAL_S):
        self.bus = bus
        self.job_id = job_id
        self.interval_s = interval_s
        self.last: dict[str, Any] | None = None
        self._pending: dict[str, Any] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    def report(self, raw: dict[str, Any]) -> None:
        """A report of the tool (``on_progress`` of :meth:`ToolRunner.run`)."""
        checked = progress.parse(raw)
        if checked is None or self._closing.is_set():
            return
        self.last = self._pending = {**checked, "at": utcnow().isoformat()}
        if self._pump is None or self._pump.done():
            name = f"toolrun-progress-{self.job_id}"
            self._pump = asyncio.create_task(self._publish(), name=name)

    async def _publish(self) -> None:
        while self._pending is not None:
            report, self._pending = self._pending, None
            event = {"event": "progress", "uuid": self.job_id, "progress": report}
            await self.bus.progress(self.job_id, event)  # never raises: logged when lost
            if self._closing.is_set():
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.interval_s)

    async def close(self) -> None:
        """Publish the report still pending, if any, and take no more."""
        self._closing.set()
        if self._pump is not None:
            await asyncio.gather(self._pump, return_exceptions=True)
