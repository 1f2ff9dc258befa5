"""Persistent jobs, so none is silently lost across a restart.

Every method is a plain, synchronous, backend-neutral (SQLite and PostgreSQL) operation on the
``jobs`` table, so any executor can use it from a thread: the embedded
:class:`~toolrun.execution.local.LocalExecutor` and the scale-out Celery one alike. The
contracts that make jobs safe under concurrency live here: :meth:`JobStore.save_if`
(compare-and-set on the status), :meth:`JobStore.add_unique` (one job per idempotency key,
settled by a unique index) and :meth:`JobStore.requeue_dead` (a dead letter is retried once).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from toolrun.errors import NotFound, StoreError
from toolrun.execution.jobs import DeadLetterReason, Job, JobStatus
from toolrun.response import Response
from toolrun.storage.errors import store_errors
from toolrun.storage.tables import jobs

INTERRUPTED = "interrupted: the server stopped while this job was running"


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _row_to_job(row: Any) -> Job:
    return Job(
        id=row.id,
        tool_id=row.tool_id,
        arguments=dict(row.arguments),
        status=JobStatus(row.status),
        result=Response.from_dict(row.result) if row.result is not None else None,
        error=row.error,
        timeout_s=row.timeout_s,
        attempts=row.attempts,
        created_at=_utc(row.created_at) or datetime.now(UTC),
        started_at=_utc(row.started_at),
        finished_at=_utc(row.finished_at),
        idempotency_key=row.idempotency_key,
        request_hash=row.request_hash,
        next_attempt_at=_utc(row.next_attempt_at),
        dead_letter_reason=(
            DeadLetterReason(row.dead_letter_reason) if row.dead_letter_reason else None
        ),
        dead_lettered_at=_utc(row.dead_lettered_at),
        retry_of=row.retry_of,
        progress=dict(row.progress) if row.progress is not None else None,
    )


# Built once: constructing a statement per call (``.values(**row)``) costs more than the write.
_INSERT = insert(jobs)
_UPDATE = update(jobs).where(jobs.c.id == bindparam("b_id"))
_UPDATE_IF = update(jobs).where(
    jobs.c.id == bindparam("b_id"), jobs.c.status == bindparam("b_expected")
)
_GET = select(jobs).where(jobs.c.id == bindparam("b_id"))
_GET_BY_KEY = select(jobs).where(jobs.c.idempotency_key == bindparam("b_key"))


def _without_nul(value: Any) -> Any:
    """A copy with U+0000 replaced by U+FFFD (PostgreSQL's JSONB cannot hold U+0000)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


class JobStore:
    """Jobs in the ``jobs`` table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # A tool may return U+0000; PostgreSQL cannot store it, so its stored copy says U+FFFD.
        self._storable = _without_nul if engine.dialect.name == "postgresql" else None

    def add(self, job: Job) -> None:
        with store_errors(f"store job {job.id}"), self.engine.begin() as conn:
            conn.execute(_INSERT, {**self._values(job), "id": job.id})

    def add_many(self, batch: list[Job]) -> None:
        """Insert several jobs in one transaction (one ``executemany``)."""
        if batch:
            with store_errors(f"store {len(batch)} jobs"), self.engine.begin() as conn:
                conn.execute(_INSERT, [{**self._values(job), "id": job.id} for job in batch])

    def add_unique(self, job: Job) -> tuple[Job, bool]:
        """Insert a job that carries an idempotency key, unless a job with that key exists.

        Returns ``(job, True)`` when inserted, else ``(the existing job, False)``. Race-safe on
        every backend: of two concurrent calls with one key, the unique index lets one insert
        and makes the other read the winner."""
        if job.idempotency_key is None:
            raise ValueError("add_unique needs a job with an idempotency key")
        with store_errors(f"store job {job.id}"):
            try:
                with self.engine.begin() as conn:
                    conn.execute(_INSERT, {**self._values(job), "id": job.id})
                return job, True
            except IntegrityError:
                existing = self.get_by_key(job.idempotency_key)
        if existing is None:  # the conflict was not the key's (it cannot be the uuid's)
            raise StoreError(f"could not store job {job.id}: IntegrityError")
        return existing, False

    def get_by_key(self, key: str) -> Job | None:
        """The job created with idempotency key ``key``, if any."""
        with store_errors("read a job by its idempotency key"), self.engine.connect() as conn:
            row = conn.execute(_GET_BY_KEY, {"b_key": key}).first()
        return _row_to_job(row) if row is not None else None

    def save(self, job: Job) -> None:
        """Write a job's current state (it must exist)."""
        with store_errors(f"store job {job.id}"), self.engine.begin() as conn:
            conn.execute(_UPDATE, {**self._values(job), "b_id": job.id})

    def save_if(self, job: Job, expected: JobStatus) -> bool:
        """Write ``job`` only if the stored status is still ``expected`` (compare-and-set)."""
        with store_errors(f"store job {job.id}"), self.engine.begin() as conn:
            params = {**self._values(job), "b_id": job.id, "b_expected": expected.value}
            result = conn.execute(_UPDATE_IF, params)
        return bool(result.rowcount)

    def _values(self, job: Job) -> dict[str, Any]:
        values = self._raw_values(job)
        if self._storable is not None:
            values["result"] = self._storable(values["result"])
            values["error"] = self._storable(values["error"])
            values["progress"] = self._storable(values["progress"])
        return values

    @staticmethod
    def _raw_values(job: Job) -> dict[str, Any]:
        return {
            "tool_id": job.tool_id,
            "arguments": job.arguments,
            "status": job.status.value,
            "result": job.result.to_dict() if job.result else None,
            "error": job.error,
            "timeout_s": job.timeout_s,
            "attempts": job.attempts,
            "created_at": job.created_at,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
            "idempotency_key": job.idempotency_key,
            "request_hash": job.request_hash,
            "next_attempt_at": job.next_attempt_at,
            "dead_letter_reason": job.dead_letter_reason.value if job.dead_letter_reason else None,
            "dead_lettered_at": job.dead_lettered_at,
            "retry_of": job.retry_of,
            "progress": job.progress,
        }

    def get(self, job_id: str) -> Job:
        with self.engine.connect() as conn:
            row = conn.execute(_GET, {"b_id": job_id}).first()
        if row is None:
            raise NotFound(f"no job {job_id!r}")
        return _row_to_job(row)

    def recent(
        self, *, status: JobStatus | None = None, tool_id: str | None = None, limit: int = 100
    ) -> list[Job]:
        stmt = select(jobs).order_by(jobs.c.created_at.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(jobs.c.status == status.value)
        if tool_id is not None:
            stmt = stmt.where(jobs.c.tool_id == tool_id)
        with self.engine.connect() as conn:
            return [_row_to_job(row) for row in conn.execute(stmt)]

    def running(self) -> list[Job]:
        """Jobs stored as ``running``, oldest first (at start-up: left by a stopped server)."""
        stmt = (
            select(jobs).where(jobs.c.status == JobStatus.RUNNING.value).order_by(jobs.c.created_at)
        )
        with store_errors("read running jobs"), self.engine.connect() as conn:
            return [_row_to_job(row) for row in conn.execute(stmt)]

    def recover(self) -> list[Job]:
        """At start-up: mark jobs left ``running`` as failed (interrupted) and dead-lettered,
        and return the ``queued`` ones (those waiting for a retry too), oldest first, to be
        queued again. An executor that retries interrupted jobs moves them back to ``queued``
        (:meth:`save_if` from ``running``) before calling this."""
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.status == JobStatus.RUNNING.value)
                .values(
                    status=JobStatus.FAILED.value,
                    error=INTERRUPTED,
                    result=Response.error(INTERRUPTED).to_dict(),
                    finished_at=now,
                    dead_letter_reason=DeadLetterReason.INTERRUPTED.value,
                    dead_lettered_at=now,
                )
            )
            rows = conn.execute(
                select(jobs)
                .where(jobs.c.status == JobStatus.QUEUED.value)
                .order_by(jobs.c.created_at)
            ).all()
        return [_row_to_job(row) for row in rows]

    # -- the dead-letter list --------------------------------------------------------------

    def dead_letters(
        self,
        *,
        reason: DeadLetterReason | None = None,
        tool_id: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Jobs on the dead-letter list, most recently dead first."""
        stmt = (
            select(jobs)
            .where(jobs.c.dead_lettered_at.is_not(None))
            .order_by(jobs.c.dead_lettered_at.desc())
            .limit(limit)
        )
        if reason is not None:
            stmt = stmt.where(jobs.c.dead_letter_reason == reason.value)
        if tool_id is not None:
            stmt = stmt.where(jobs.c.tool_id == tool_id)
        with store_errors("read the dead-letter list"), self.engine.connect() as conn:
            return [_row_to_job(row) for row in conn.execute(stmt)]

    def requeue_dead(self, job_id: str, retry: Job) -> bool:
        """In one transaction: take ``job_id`` off the dead-letter list and insert ``retry``
        (its new, queued job). False, with nothing written, when ``job_id`` is not on the list
        (any more): of two concurrent retries of one dead letter, one wins."""
        with store_errors(f"retry job {job_id}"), self.engine.begin() as conn:
            taken = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.dead_lettered_at.is_not(None))
                .values(dead_letter_reason=None, dead_lettered_at=None)
            )
            if taken.rowcount != 1:
                return False
            conn.execute(_INSERT, {**self._values(retry), "id": retry.id})
        return True

    def forget_dead(
        self,
        job_id: str | None = None,
        *,
        reason: DeadLetterReason | None = None,
        tool_id: str | None = None,
    ) -> int:
        """Take jobs off the dead-letter list (the jobs themselves stay); how many were on it.
        ``job_id``: that one only; else every one matching ``reason`` and ``tool_id``."""
        stmt = (
            update(jobs)
            .where(jobs.c.dead_lettered_at.is_not(None))
            .values(dead_letter_reason=None, dead_lettered_at=None)
        )
        if job_id is not None:
            stmt = stmt.where(jobs.c.id == job_id)
        if reason is not None:
            stmt = stmt.where(jobs.c.dead_letter_reason == reason.value)
        if tool_id is not None:
            stmt = stmt.where(jobs.c.tool_id == tool_id)
        with store_errors("update the dead-letter list"), self.engine.begin() as conn:
            return int(conn.execute(stmt).rowcount)

    # -- for other executors ----------------------------------------------------------------

    def statuses(self, job_ids: list[str]) -> dict[str, JobStatus]:
        """The stored status of each of ``job_ids`` that exists, in one query (waiters of the
        Celery executor check on theirs this way when an event may have been missed)."""
        found: dict[str, JobStatus] = {}
        for start in range(0, len(job_ids), 500):
            chunk = job_ids[start : start + 500]
            stmt = select(jobs.c.id, jobs.c.status).where(jobs.c.id.in_(chunk))
            with store_errors(f"read {len(chunk)} jobs"), self.engine.connect() as conn:
                found.update({row.id: JobStatus(row.status) for row in conn.execute(stmt)})
        return found

    def queued_ids(self) -> list[str]:
        """Ids of the jobs still ``queued``, oldest first (the Celery executor sends their
        tasks again at start-up, in case a crashed process stored a job but never sent it)."""
        stmt = (
            select(jobs.c.id)
            .where(jobs.c.status == JobStatus.QUEUED.value)
            .order_by(jobs.c.created_at)
        )
        with store_errors("read queued jobs"), self.engine.connect() as conn:
            return [row.id for row in conn.execute(stmt)]
