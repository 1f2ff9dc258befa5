"""Persistent jobs, so none is silently lost across a restart."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select, update

from toolrun.errors import NotFound
from toolrun.execution.jobs import Job, JobStatus
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
    )


# Built once: constructing a statement per call (``.values(**row)``) costs more than the write.
_INSERT = insert(jobs)
_UPDATE = update(jobs).where(jobs.c.id == bindparam("b_id"))
_UPDATE_IF = update(jobs).where(
    jobs.c.id == bindparam("b_id"), jobs.c.status == bindparam("b_expected")
)
_GET = select(jobs).where(jobs.c.id == bindparam("b_id"))


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

    def recover(self) -> list[Job]:
        """At start-up: mark jobs left ``running`` as failed (interrupted) and return the
        ``queued`` ones, oldest first, to be queued again."""
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
                )
            )
            rows = conn.execute(
                select(jobs)
                .where(jobs.c.status == JobStatus.QUEUED.value)
                .order_by(jobs.c.created_at)
            ).all()
        return [_row_to_job(row) for row in rows]
