"""When a request is sent again, and after how long.

A request that never reached the server (connection refused, connect timeout) is always safe
to send again. One that may have reached it is sent again only if repeating it is harmless:
``GET``, ``PUT``, ``DELETE``, a read-only ``POST`` (queries, search) and any request carrying
an ``Idempotency-Key`` (the server answers a repeated key with the same job). Those are
retried after a transport error or a ``502``/``503``/``504``, with exponential backoff (a
``Retry-After`` header is honoured up to ``max_backoff_s``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def idempotent(method: str, headers: Mapping[str, str] | None) -> bool:
    keyed = any(k.lower() == "idempotency-key" for k in headers or {})
    return method.upper() in SAFE_METHODS or keyed


@dataclass(frozen=True)
class Retry:
    """``attempts`` tries in all (1: never retry); the wait before try ``n + 1`` is
    ``min(backoff_s * factor ** (n - 1), max_backoff_s)`` plus up to ``jitter`` of it."""

    attempts: int = 3
    backoff_s: float = 0.1
    factor: float = 2.0
    max_backoff_s: float = 2.0
    jitter: float = 0.1
    statuses: frozenset[int] = frozenset({502, 503, 504})

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait after failed try number ``attempt``."""
        if retry_after is not None:
            try:
                return max(0.0, min(float(retry_after), self.max_backoff_s))
            except ValueError:
                pass
        base = min(self.backoff_s * self.factor ** (attempt - 1), self.max_backoff_s)
        return base + random.uniform(0, self.jitter * base)

    def after_error(self, attempt: int, exc: httpx.TransportError, safe: bool) -> float | None:
        """The wait before trying again after ``exc``, or None to give up."""
        if attempt >= self.attempts or not (safe or isinstance(exc, NOT_SENT)):
            return None
        return self.delay(attempt)

    def after_reply(self, attempt: int, reply: httpx.Response, safe: bool) -> float | None:
        """The wait before trying again after ``reply``, or None to keep it."""
        if attempt >= self.attempts or not safe or reply.status_code not in self.statuses:
            return None
        return self.delay(attempt, reply.headers.get("retry-after"))


NO_RETRY = Retry(attempts=1)
