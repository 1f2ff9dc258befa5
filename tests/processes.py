"""Helpers for tests that watch processes: is one gone, and wait (bounded) for a condition."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio


def is_dead(pid: int) -> bool:
    """Gone or a zombie (whoever reaps orphans here may be slow to do so)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``condition()`` holds, failing after ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.01)
