"""Write-behind recording of finished jobs, batched.

The trusted inline path answers first and records afterwards. Records are gathered for up to
``window_s`` (10 ms) and written in one ``executemany`` transaction: on a small machine a
transaction per call competes with the event loop for the GIL, a batch hardly does.
:meth:`JobRecorder.flush` waits for everything recorded so far (the executor calls it when it
closes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from toolrun.execution.jobs import Job

log = logging.getLogger(__name__)


class JobRecorder:
    def __init__(
        self, write_batch: Callable[[list[Job]], Awaitable[None]], window_s: float = 0.01
    ) -> None:
        self._write_batch = write_batch
        self.window_s = window_s
        self._pending: list[Job] = []
        self._unwritten: dict[str, Job] = {}  # recorded, not yet committed (pending or in flight)
        self._writer: asyncio.Task[None] | None = None

    def unwritten(self, job_id: str) -> Job | None:
        """A recorded job whose write has not committed yet (so reads never miss it)."""
        return self._unwritten.get(job_id)

    def record(self, job: Job) -> None:
        self._unwritten[job.id] = job
        self._pending.append(job)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="toolrun-job-recorder")

    async def _drain(self, gather: bool = True) -> None:
        if gather:
            await asyncio.sleep(self.window_s)  # let a batch form
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._write_batch(batch)
            except Exception:
                log.exception("could not record %d finished job(s)", len(batch))
            finally:
                for job in batch:
                    self._unwritten.pop(job.id, None)

    async def flush(self) -> None:
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)
        if self._pending:
            await self._drain(gather=False)
