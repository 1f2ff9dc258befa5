"""Per-tool concurrency and rate limits shared by every ``toolrun worker``, in Redis.

- **Concurrency**: a semaphore per tool, a sorted set of the jobs holding a place, each
  scored with the moment its place lapses. A worker renews its jobs' places with their leases
  (every third of ``job_lease_s``) and gives them back when the call ends; the place of a
  worker that died lapses by itself after ``job_lease_s``, so a dead worker never keeps a tool
  blocked for longer than that.
- **Rate limit**: a token bucket per tool (``calls`` tokens, refilled evenly over ``per_s``
  seconds), kept in a hash and taken from by a Lua script, so two workers never take one
  token.

Both scripts read the time from Redis itself (``TIME``), not from the workers: skew between
the workers' clocks does not matter. The limits are still approximate: a place is held from
admission until the call ends (a job admitted while it waits for a free tool process holds
one), a place whose worker died is busy until it lapses, and jobs held back are not served in
the order they came (each is sent again with a short countdown and taken by whichever worker
is free). A Redis that cannot be reached admits nothing: the job waits (see
:class:`~toolrun.execution.celery_worker.JobWorker`).
"""

from __future__ import annotations

import logging
import random
from typing import Any

from toolrun.registry.tool import Tool

log = logging.getLogger(__name__)

HELD_RECHECK_S = (0.2, 0.6)
"""A job held at its tool's concurrency comes back after a random time in this range."""

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_ACQUIRE = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local ttl = tonumber(ARGV[3])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
    redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
    redis.call('PEXPIRE', KEYS[1], ttl)
    return 1
end
return 0
"""
)

_RENEW = (
    _NOW_MS
    + """
local ttl = tonumber(ARGV[2])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
    redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
    redis.call('PEXPIRE', KEYS[1], ttl)
    return 1
end
return 0
"""
)

_TAKE = (
    _NOW_MS
    + """
local capacity = tonumber(ARGV[1])
local per_ms = tonumber(ARGV[2])
local rate = capacity / per_ms
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or capacity)
local stamp = tonumber(redis.call('HGET', KEYS[1], 'stamp') or now)
tokens = math.min(capacity, tokens + math.max(0, now - stamp) * rate)
local wait = 0
if tokens >= 1 then
    tokens = tokens - 1
else
    wait = math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(per_ms) + 1000)
return wait
"""
)

_REFUND = """
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens'))
if tokens then
    redis.call('HSET', KEYS[1], 'tokens', tostring(math.min(tonumber(ARGV[1]), tokens + 1)))
end
return 0
"""


def limited(tool: Tool) -> bool:
    return tool.policy.concurrency is not None or tool.policy.rate_limit is not None


class ToolLimits:
    """Admission of a worker's jobs under their tools' limits; see the module docstring."""

    def __init__(self, client: Any, prefix: str, ttl_s: float) -> None:
        self.prefix = prefix
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.zrem
        self._take = client.register_script(_TAKE)
        self._refund = client.register_script(_REFUND)
        self._places: dict[str, str] = {}  # job id -> the semaphore it holds a place in

    def _semaphore(self, tool: Tool) -> str:
        return f"{self.prefix}running:{tool.id}"

    def _bucket(self, tool: Tool) -> str:
        return f"{self.prefix}bucket:{tool.id}"

    async def admit(self, tool: Tool, job_id: str) -> float | None:
        """0: ``job_id`` may start now (call :meth:`done` when its call ends); more: ask again
        in that many seconds; None: Redis could not be reached."""
        policy = tool.policy
        try:
            if policy.concurrency is not None:
                key = self._semaphore(tool)
                if not await self._acquire(
                    keys=[key], args=[job_id, policy.concurrency, self.ttl_ms]
                ):
                    return random.uniform(*HELD_RECHECK_S)
                self._places[job_id] = key
            if policy.rate_limit is not None:
                limit = policy.rate_limit
                per_ms = limit.per_s * 1000
                wait_ms = await self._take(keys=[self._bucket(tool)], args=[limit.calls, per_ms])
                if wait_ms:
                    await self._give_back(job_id)
                    return max(int(wait_ms) / 1000, 0.001)
        except Exception as exc:
            log.warning("could not check the limits of tool %s: %s", tool.id, exc)
            await self._give_back(job_id)
            return None
        return 0.0

    async def renew(self, job_id: str) -> None:
        """Keep ``job_id``'s place (with its lease); a lapsed one is taken again."""
        key = self._places.get(job_id)
        if key is None:
            return
        try:
            if not await self._renew(keys=[key], args=[job_id, self.ttl_ms]):
                log.warning("job %s lost its place at its tool's concurrency limit", job_id)
        except Exception as exc:
            log.warning("could not renew the place of job %s: %s", job_id, exc)

    async def done(self, tool: Tool, job_id: str, *, started: bool) -> None:
        """``job_id``'s call has ended (or, ``started=False``, will not happen: its token goes
        back to the bucket too)."""
        await self._give_back(job_id)
        limit = tool.policy.rate_limit
        if not started and limit is not None:
            try:
                await self._refund(keys=[self._bucket(tool)], args=[limit.calls])
            except Exception as exc:
                log.warning("could not give back a token of tool %s: %s", tool.id, exc)

    async def _give_back(self, job_id: str) -> None:
        key = self._places.pop(job_id, None)
        if key is None:
            return
        try:
            await self._release(key, job_id)
        except Exception as exc:  # it lapses by itself
            log.warning("could not give back the place of job %s: %s", job_id, exc)
