"""A short-lived cache of resolved tools for the executor's hot path.

Reading a tool costs a query and, on 2 cores, GIL time the event loop would rather spend
answering. Entries live ``ttl_s`` seconds; every write through this process's
:class:`~toolrun.storage.tool_store.ToolStore` clears the cache at once, so only writes made by
*other* processes (another replica, the CLI) can be seen up to ``ttl_s`` late.
"""

from __future__ import annotations

import time

from toolrun.registry.tool import Tool


class ToolCache:
    def __init__(self, ttl_s: float, max_entries: int = 4096) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Tool]] = {}
        # Bumped by every clear(): a read that began before a write must not store what it
        # read after that write cleared the cache (it could be the old tool).
        self.generation = 0

    def get(self, ref: str) -> Tool | None:
        entry = self._entries.get(ref)
        if entry is None:
            return None
        stored_at, tool = entry
        if time.monotonic() - stored_at > self.ttl_s:
            self._entries.pop(ref, None)
            return None
        return tool

    def put(self, ref: str, tool: Tool, generation: int) -> None:
        """Store ``tool`` if no write has cleared the cache since ``generation`` was read."""
        if self.ttl_s <= 0 or generation != self.generation:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[ref] = (time.monotonic(), tool)

    def clear(self, _tool_id: str | None = None) -> None:
        """Drop everything (a write may change what any reference resolves to)."""
        self.generation += 1
        self._entries.clear()
