"""API keys (``Authorization: Bearer``) and a per-key rate limit for the ``/v1`` routes.

With no keys configured the routes are open and every caller shares the key id
``anonymous``. A key is known only by its id, the first 16 hex digits of its SHA-256: that is
what the log stores and what rate limits are counted by; the key itself is compared in
constant time and never kept elsewhere. The rate limit is a token bucket per key id:
``rate_limit`` requests per minute, bursts of up to that many.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections.abc import Callable, Iterable

from toolrun.gateway.errors import AuthenticationFailed, RateLimited

ANONYMOUS = "anonymous"


def key_id(key: str) -> str:
    return "key_" + hashlib.sha256(key.encode()).hexdigest()[:16]


class KeyRing:
    """The accepted keys; :meth:`check` returns the caller's key id or raises a 401."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = {key_id(k): k.encode() for k in keys if k}

    @property
    def open(self) -> bool:
        return not self._keys

    def secrets(self) -> list[str]:
        return [k.decode() for k in self._keys.values()]

    def check(self, authorization: str | None) -> str:
        if self.open:
            return ANONYMOUS
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationFailed(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code=None,
                headers={"WWW-Authenticate": "Bearer"},
            )
        candidate = token.encode()
        found = None
        for ident, key in self._keys.items():  # every key compared: no early exit to time
            if hmac.compare_digest(candidate, key):
                found = ident
        if found is None:
            shown = token[:3] + "*" * 3 + token[-2:] if len(token) > 8 else "*" * len(token)
            raise AuthenticationFailed(
                f"Incorrect API key provided: {shown}.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return found


class RateLimiter:
    """A token bucket per key id; ``None`` rate: no limit."""

    def __init__(
        self, per_minute: int | None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, ident: str) -> None:
        """Spend one request of ``ident``'s allowance, or raise a 429 with Retry-After."""
        if self.per_minute is None:
            return
        capacity = float(self.per_minute)
        rate = capacity / 60.0
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(ident, (capacity, now))
            tokens = min(capacity, tokens + (now - at) * rate)
            if tokens < 1.0:
                self._buckets[ident] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / rate)
                raise RateLimited(
                    f"Rate limit reached: {self.per_minute} requests per minute for this API "
                    f"key. Please try again in {wait}s.",
                    headers={"Retry-After": str(wait)},
                )
            self._buckets[ident] = (tokens - 1.0, now)
