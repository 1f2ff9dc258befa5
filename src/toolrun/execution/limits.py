"""Per-tool concurrency and rate limits of the embedded executor.

A dispatcher that takes a job asks :meth:`ToolGate.admit` whether the job's tool may start
one more call now: at most ``concurrency`` of its calls at once, and a token of its rate
limit's bucket (``calls`` per ``per_s`` seconds, bursts of up to ``calls``). A job that may not
start yet is *held* here, in a first-in first-out line per tool, and the dispatcher moves on
to other tools' jobs: a throttled tool never starves the rest of the queue. When a call of
the tool ends (:meth:`ToolGate.done`) or its bucket refills (a timer), held jobs are handed
back through ``release``, already admitted.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from toolrun.registry.tool import RateLimit

T = TypeVar("T")


class TokenBucket:
    """``calls`` tokens, refilled continuously at ``calls / per_s`` per second."""

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.limit = limit
        self.capacity = float(limit.calls)
        self.rate = limit.calls / limit.per_s
        self.tokens = self.capacity
        self.stamp = now

    def take(self, now: float) -> float:
        """0 when a token was taken, else the seconds until one will be there."""
        wait = self.wait(now)
        if wait == 0:
            self.tokens -= 1
        return wait

    def refund(self) -> None:
        """Give back a token taken for a call that did not happen after all."""
        self.tokens = min(self.capacity, self.tokens + 1)

    def wait(self, now: float) -> float:
        """Seconds until a token is there (0: now)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


@dataclass
class _Line(Generic[T]):
    """One tool's state: calls admitted and not done, its bucket, the jobs held back."""

    concurrency: int | None = None
    bucket: TokenBucket | None = None
    running: int = 0
    held: deque[T] = field(default_factory=deque)
    timer: asyncio.TimerHandle | None = None


class ToolGate(Generic[T]):
    """See the module docstring. Runs on the event loop (no locks)."""

    def __init__(self, release: Callable[[T], None], clock: Callable[[], float] = time.monotonic):
        self._release = release
        self._clock = clock
        self._lines: dict[str, _Line[T]] = {}
        self._closed = False

    @property
    def held(self) -> int:
        return sum(len(line.held) for line in self._lines.values())

    def admit(self, key: str, concurrency: int | None, rate: RateLimit | None, item: T) -> bool:
        """True: ``item`` may start now (call :meth:`done` when it ends). False: it is held
        and will be passed to ``release`` once it may start. The limits are the tool's current
        ones; a changed policy applies from this call on."""
        line = self._lines.get(key)
        if line is None:
            if concurrency is None and rate is None:
                return True  # the common case: no state at all
            line = self._lines[key] = _Line()
        line.concurrency = concurrency
        if rate is None:
            line.bucket = None
        elif line.bucket is None or line.bucket.limit != rate:
            line.bucket = TokenBucket(rate, self._clock())
        if not line.held and self._try_start(line) == 0:
            return True
        line.held.append(item)
        self._wake_later(line, key)
        return False

    def done(self, key: str, *, started: bool = True) -> None:
        """A call admitted for ``key`` has ended: its place goes to the next held job. A job
        that never started (cancelled or expired meanwhile) gives its token back too."""
        line = self._lines.get(key)
        if line is None:
            return
        line.running -= 1
        if not started and line.bucket is not None:
            line.bucket.refund()
        self._wake(key)

    def remove(self, key: str, item: T) -> bool:
        """Take a held ``item`` out of its line (it was cancelled or expired)."""
        line = self._lines.get(key)
        if line is None or item not in line.held:
            return False
        line.held.remove(item)
        return True

    def close(self) -> None:
        self._closed = True
        for line in self._lines.values():
            if line.timer is not None:
                line.timer.cancel()

    def _try_start(self, line: _Line[T]) -> float | None:
        """0: started; None: wait for a running call to end; else seconds until a token."""
        if line.concurrency is not None and line.running >= line.concurrency:
            return None
        if line.bucket is not None:
            wait = line.bucket.take(self._clock())
            if wait > 0:
                return wait
        line.running += 1
        return 0.0

    def _wake(self, key: str) -> None:
        line = self._lines.get(key)
        if line is None or self._closed:
            return
        if line.timer is not None:
            line.timer.cancel()
            line.timer = None
        while line.held:
            if self._try_start(line) != 0:
                self._wake_later(line, key)
                return
            self._release(line.held.popleft())
        if line.running <= 0 and line.bucket is None:
            del self._lines[key]  # nothing to remember

    def _wake_later(self, line: _Line[T], key: str) -> None:
        """If the bucket is what holds the line back, look again when a token is there."""
        if line.timer is not None or line.bucket is None or self._closed:
            return
        if line.concurrency is not None and line.running >= line.concurrency:
            return  # done() will wake it
        wait = max(line.bucket.wait(self._clock()), 0.001)
        line.timer = asyncio.get_running_loop().call_later(wait, self._wake, key)
