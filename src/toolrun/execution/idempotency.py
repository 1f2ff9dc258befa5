"""Idempotency keys: the same key names the same job, for any executor.

A key is the caller's name for *one request*: the first submit with it creates the job, every
later one (also after a restart: the key is a unique column of the jobs table) gets that job
back. A key reused for a different request (another tool reference or other arguments) is
refused (:class:`~toolrun.errors.IdempotencyKeyReused`, 409): that is a bug of the caller, and
answering with the other request's job would hide it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from toolrun.errors import CallError, IdempotencyKeyReused
from toolrun.execution.jobs import Job

MAX_KEY_LENGTH = 255


def check_key(key: str) -> str:
    """``key`` if it is 1 to 255 printable characters, else a 400 saying so."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise CallError(
            f"an idempotency key is 1 to {MAX_KEY_LENGTH} characters long, got {len(key)}; "
            "a UUID is a good key"
        )
    if not key.isprintable():
        raise CallError("an idempotency key may not contain control characters; use a UUID")
    return key


def request_hash(tool_ref: str, arguments: dict[str, Any] | None) -> str:
    """A digest of the request as the caller made it: the tool reference as written and the
    arguments as given (before default params are merged), key order ignored."""
    canonical = json.dumps(
        {"tool": tool_ref, "arguments": arguments or {}},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def same_request(job: Job, digest: str) -> Job:
    """``job`` (found by its key) if it was made by the request ``digest`` describes."""
    if job.request_hash != digest:
        raise IdempotencyKeyReused(
            f"the idempotency key {job.idempotency_key!r} was already used for another request "
            f"(job {job.id}, tool {job.tool_id!r}); a key names one request: send the same "
            "tool and arguments again, or use a new key for a new request",
            detail={"uuid": job.id, "tool_id": job.tool_id},
        )
    return job
