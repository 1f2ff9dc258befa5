"""Write-behind recording of finished jobs, batched.

The trusted inline path answers first and records afterwards. Records are gathered for up to
``window_s`` (10 ms) and written in one ``executemany`` transaction: on a small machine a
transaction per call competes with the event loop for the GIL, a batch hardly does. A batch
that fails is retried one record at a time, so one bad record loses only itself.
:meth:`JobRecorder.flush` waits for the records made before it was called, not for a stream
that never ends.
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
        self._pending: list[tuple[int, Job]] = []
        self._unwritten: dict[str, Job] = {}  # recorded, not yet committed (pending or in flight)
        self._recorded = 0  # sequence number of the last record
        self._done = 0  # every record up to this number has been written (or given up)
        self._progress = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    def unwritten(self, job_id: str) -> Job | None:
        """A recorded job whose write has not committed yet (so reads never miss it)."""
        return self._unwritten.get(job_id)

    def record(self, job: Job) -> None:
        self._recorded += 1
        self._unwritten[job.id] = job
        self._pending.append((self._recorded, job))
        self._ensure_writer(gather=True)

    def _ensure_writer(self, *, gather: bool) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(gather), name="toolrun-job-recorder")

    async def _drain(self, gather: bool) -> None:
        """Write batches until nothing is pending. Every batch first waits out the window
        (unless a flush asked for speed): without it, under steady load each write would
        carry the one or two records that arrived during the previous write."""
        while True:
            if gather:
                await asyncio.sleep(self.window_s)  # let a batch form
            gather = True
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            jobs = [job for _, job in batch]
            try:
                await self._write_batch(jobs)
            except Exception:
                await self._write_one_by_one(jobs)
            finally:
                for job in jobs:
                    self._unwritten.pop(job.id, None)
                self._done = batch[-1][0]
                self._progress.set()
                self._progress = asyncio.Event()

    async def _write_one_by_one(self, jobs: list[Job]) -> None:
        for job in jobs:
            try:
                await self._write_batch([job])
            except Exception:
                log.exception("could not record finished job %s", job.id)

    async def flush(self) -> None:
        """Return once every record made before this call is written."""
        target = self._recorded
        while self._done < target:
            progress = self._progress
            self._ensure_writer(gather=False)
            await progress.wait()
