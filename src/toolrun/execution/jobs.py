"""Jobs: one call of a tool, from queued to a final status.

::

    queued ──▶ running ──▶ succeeded | failed | timed_out
       │          │
       └──────────┴──────▶ cancelled

A job whose tool *ran and returned an error result* is ``failed`` with the isError Response
kept as its ``result``; a job that could not run at all (worker died, interrupted by a
restart) is ``failed`` with ``error`` set and possibly no result.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from toolrun.response import Response


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def final(self) -> bool:
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Job:
    """An immutable record of one call; the executor replaces it as the job moves on."""

    tool_id: str
    arguments: dict[str, Any]
    id: str = field(default_factory=new_job_id)
    status: JobStatus = JobStatus.QUEUED
    result: Response | None = None
    error: str | None = None
    timeout_s: float | None = None
    attempts: int = 0
    created_at: datetime = field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def evolve(self, **changes: Any) -> Job:
        return replace(self, **changes)

    @property
    def duration_ms(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds() * 1000
        return None

    def to_dict(self) -> dict[str, Any]:
        """The job's wire shape (``GET /jobs/{uuid}``)."""
        return {
            "uuid": self.id,
            "tool_id": self.tool_id,
            "status": self.status.value,
            "arguments": self.arguments,
            "result": self.result.to_dict() if self.result else None,
            "output": self.result.output if self.result and not self.result.is_error else None,
            "error": self.error,
            "timeout_s": self.timeout_s,
            "attempts": self.attempts,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "duration_ms": self.duration_ms,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
