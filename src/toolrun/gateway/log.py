"""The gateway's request log: one row per ``/v1`` request in the ``gateway_log`` table.

Each row keeps the request and response bodies, the status, the duration, the public model,
the mode used, the number of upstream rounds and the caller's key id (a hash, never the key).
Secrets are redacted before anything is stored (:func:`redact`): values of fields named like
credentials (``authorization``, ``api_key``, ``password``, ``token``, ``secret`` ...), any
occurrence of a configured key (the gateway's own and the upstreams'), bearer tokens and
``sk-...`` keys. Bodies larger than the cap are stored as their first bytes with a marker.

Rows are written behind the answer by one thread in batches (a request never waits for the
database); :meth:`RequestLog.flush` waits for what is pending, and reads flush first.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from toolrun.storage.errors import store_errors
from toolrun.storage.tables import gateway_log

log = logging.getLogger(__name__)

REDACTED = "[REDACTED]"
_SECRET_FIELD = re.compile(
    r"(authorization|api[-_]?key|apikey|password|passwd|secret|token|credential|cookie)", re.I
)
_NOT_SECRET_FIELD = re.compile(r"^(max_|prompt_|completion_|total_)?tokens?$|_tokens$", re.I)
_SECRET_TEXT = re.compile(r"(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}|\bsk-[A-Za-z0-9_-]{16,}")
_BATCH = 200


@dataclass
class LogEntry:
    request_id: str
    key_id: str
    endpoint: str
    status: int
    duration_ms: float
    model: str | None = None
    mode: str | None = None
    stream: bool = False
    rounds: int = 0
    error: str | None = None
    request: Any = None
    response: Any = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """``value`` with secrets replaced by ``[REDACTED]``; see the module docstring."""
    known = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
    pattern = re.compile("|".join(map(re.escape, known))) if known else None
    return _redact(value, pattern)


def _redact(value: Any, pattern: re.Pattern[str] | None) -> Any:
    if isinstance(value, str):
        if pattern is not None:
            value = pattern.sub(REDACTED, value)
        return _SECRET_TEXT.sub(REDACTED, value)
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED if _secret_field(str(k), v) else _redact(v, pattern)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v, pattern) for v in value]
    return value


def _secret_field(name: str, value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float):
        return False
    return bool(_SECRET_FIELD.search(name)) and not _NOT_SECRET_FIELD.search(name)


def capped(value: Any, limit: int) -> Any:
    """``value``, or ``{"truncated": true, "bytes": n, "head": text}`` when its JSON is longer
    than ``limit`` bytes."""
    if value is None:
        return None
    text = json.dumps(value, ensure_ascii=False, default=str)
    size = len(text.encode())
    if size <= limit:
        return value
    head = text.encode()[:limit].decode(errors="ignore")
    return {"truncated": True, "bytes": size, "head": head}


class RequestLog:
    """Writes entries behind the answer (one thread, batched) and reads them back."""

    def __init__(
        self, engine: Engine, *, secrets: Iterable[str] = (), body_bytes: int = 65536
    ) -> None:
        self.engine = engine
        self.secrets = list(secrets)
        self.body_bytes = body_bytes
        self._queue: queue.Queue[LogEntry | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def add(self, entry: LogEntry) -> None:
        """Queue ``entry`` (redacted and capped here, on the caller's side)."""
        entry.request = capped(redact(entry.request, self.secrets), self.body_bytes)
        entry.response = capped(redact(entry.response, self.secrets), self.body_bytes)
        if entry.error is not None:
            entry.error = redact(entry.error, self.secrets)[:4000]
        self._ensure_thread()
        self._queue.put(entry)

    def flush(self) -> None:
        """Block until every queued entry is stored."""
        if self._thread is not None:
            self._queue.join()

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=10)

    def list(
        self, *, key_id: str | None, limit: int = 20, before: int | None = None
    ) -> tuple[list[dict[str, Any]], bool]:
        """Newest first: ``(entries, has_more)``; ``key_id`` ``None`` reads every key's."""
        self.flush()
        stmt = select(gateway_log).order_by(gateway_log.c.id.desc()).limit(limit + 1)
        if key_id is not None:
            stmt = stmt.where(gateway_log.c.key_id == key_id)
        if before is not None:
            stmt = stmt.where(gateway_log.c.id < before)
        with store_errors("read the gateway log"), self.engine.connect() as conn:
            rows = list(conn.execute(stmt))
        return [_row(r) for r in rows[:limit]], len(rows) > limit

    def get(self, request_id: str, *, key_id: str | None) -> dict[str, Any] | None:
        self.flush()
        stmt = select(gateway_log).where(gateway_log.c.request_id == request_id)
        if key_id is not None:
            stmt = stmt.where(gateway_log.c.key_id == key_id)
        with store_errors("read the gateway log"), self.engine.connect() as conn:
            row = conn.execute(stmt.order_by(gateway_log.c.id.desc())).first()
        return _row(row) if row is not None else None

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._write_loop, name="gateway-log", daemon=True
                )
                self._thread.start()

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            while len(batch) < _BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            entries = [e for e in batch if e is not None]
            try:
                if entries:
                    with self.engine.begin() as conn:
                        conn.execute(insert(gateway_log), [asdict(e) for e in entries])
            except Exception:  # a log write must never take the gateway down
                log.exception("could not store %d gateway log entries", len(entries))
            finally:
                for _ in batch:
                    self._queue.task_done()
            if None in batch:
                return


def _row(row: Any) -> dict[str, Any]:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return {
        "id": row.id,
        "object": "gateway.log",
        "request_id": row.request_id,
        "created_at": created.isoformat(),
        "key_id": row.key_id,
        "endpoint": row.endpoint,
        "model": row.model,
        "mode": row.mode,
        "stream": row.stream,
        "status": row.status,
        "duration_ms": row.duration_ms,
        "rounds": row.rounds,
        "error": row.error,
        "request": row.request,
        "response": row.response,
    }
