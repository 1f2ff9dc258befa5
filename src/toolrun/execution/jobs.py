"""Jobs: one call of a tool, from queued to a final status.

::

    queued ──▶ running ──▶ succeeded | failed | timed_out
     │  ▲         │
     │  └─────────┤  a failed attempt with attempts left: queued again, ``next_attempt_at`` set
     └────────────┴──────▶ cancelled

A job whose tool *ran and returned an error result* is ``failed`` with the isError Response
kept as its ``result``; a job that could not run at all (worker died, interrupted by a
restart, expired in the queue) is ``failed`` with ``error`` set. Every job that ends ``failed``
or ``timed_out`` is also on the **dead-letter list** (``dead_letter_reason`` says why), until
it is retried or removed from the list. See ``docs/jobs.md``.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from toolrun.response import Response, TimedOut


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

    @property
    def dead(self) -> bool:
        """A final status that puts the job on the dead-letter list."""
        return self in (JobStatus.FAILED, JobStatus.TIMED_OUT)


class DeadLetterReason(enum.StrEnum):
    """Why a job is on the dead-letter list."""

    EXHAUSTED = "exhausted"
    """Its last allowed attempt failed (error result, time limit or crashed worker)."""
    EXPIRED = "expired"
    """It was still queued when it reached its maximum age, so it never ran (again)."""
    INTERRUPTED = "interrupted"
    """The server stopped while it was running and it had no attempt left."""
    ERROR = "error"
    """It could not run (its tool was deleted, a runner failed) or its result not be stored."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Job:
    """An immutable record of one call; the executor replaces it as the job moves on.

    ``attempts`` counts the attempts that started. While a job waits for its next attempt it
    is ``queued`` with ``next_attempt_at`` set and ``error`` saying how the last one failed.
    ``idempotency_key``/``request_hash``: the caller's key and a digest of the request made
    with it (see :func:`toolrun.execution.idempotency.request_hash`). ``progress``: the last
    progress report of the tool. ``retry_of``: the dead-lettered job this one retries.
    """

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
    idempotency_key: str | None = None
    request_hash: str | None = None
    next_attempt_at: datetime | None = None
    dead_letter_reason: DeadLetterReason | None = None
    dead_lettered_at: datetime | None = None
    retry_of: str | None = None
    progress: dict[str, Any] | None = None

    def evolve(self, **changes: Any) -> Job:
        return replace(self, **changes)

    def started(self) -> Job:
        """This job's next attempt has begun (a worker has it)."""
        return replace(
            self,
            status=JobStatus.RUNNING,
            started_at=utcnow(),
            attempts=self.attempts + 1,
            next_attempt_at=None,
            progress=None,
        )

    def answered(self, response: Response) -> Job:
        """This job ended with its tool's answer: ``succeeded``, ``failed`` (an error result)
        or ``timed_out`` (a :class:`~toolrun.response.TimedOut`, not a text that says so)."""
        if not response.is_error:
            status = JobStatus.SUCCEEDED
        elif isinstance(response, TimedOut):
            status = JobStatus.TIMED_OUT
        else:
            status = JobStatus.FAILED
        error = response.text if response.is_error else None
        return replace(self, status=status, result=response, error=error, finished_at=utcnow())

    def ended(self, status: JobStatus, message: str) -> Job:
        """This job ended without an answer of its tool (cancelled, expired, could not run)."""
        return replace(
            self, status=status, error=message, result=Response.error(message), finished_at=utcnow()
        )

    def dead_lettered(self, reason: DeadLetterReason) -> Job:
        """This finished job on the dead-letter list (unchanged unless it ended failed or
        timed_out, or if it is already there)."""
        if not self.status.dead or self.dead_letter_reason is not None:
            return self
        return replace(
            self, dead_letter_reason=reason, dead_lettered_at=self.finished_at or utcnow()
        )

    @property
    def duration_ms(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds() * 1000
        return None

    def to_dict(self) -> dict[str, Any]:
        """The job's wire shape (``GET /jobs/{uuid}``)."""
        dead_letter = None
        if self.dead_letter_reason is not None:
            dead_letter = {
                "reason": self.dead_letter_reason.value,
                "at": _iso(self.dead_lettered_at),
                "error": self.error,
            }
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
            "next_attempt_at": _iso(self.next_attempt_at),
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "duration_ms": self.duration_ms,
            "progress": self.progress,
            "idempotency_key": self.idempotency_key,
            "retry_of": self.retry_of,
            "dead_letter": dead_letter,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
