"""Talking to other MCP servers: where one is (:class:`McpTarget`), an open session to it
(:class:`Link`) and the sessions a process keeps (:class:`LinkPool`).

A link is opened once and reused by every call to the same server, since opening one costs
a handshake (and, over stdio, starting the server's process). The SDK's sessions live in
anyio task groups that must be left by the task that entered them, so each link has a task
of its own that holds the session open until the link is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import shutil
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from toolrun.errors import InvalidDefinition, UpstreamError
from toolrun.registry.runtimes import McpRuntime

if TYPE_CHECKING:
    from mcp import Client
    from mcp_types import CallToolResult
    from mcp_types import Tool as McpTool

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 30.0
MAX_LINKS = 32


@dataclass(frozen=True)
class McpTarget:
    """An MCP server: a Streamable HTTP ``url``, or a ``command`` spoken to over stdio."""

    url: str | None = None
    command: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = field(default=())
    cwd: str | None = None

    @classmethod
    def from_runtime(cls, runtime: McpRuntime) -> McpTarget:
        env = tuple(sorted(runtime.env.items()))
        return cls(runtime.url, tuple(runtime.command or ()), env, runtime.cwd)

    @classmethod
    def parse(cls, spec: str, env: Mapping[str, str] | None = None) -> McpTarget:
        """``http(s)://...`` is a URL; anything else a command line (split like a shell)."""
        spec = spec.strip()
        if spec.startswith(("http://", "https://")):
            if env:
                raise InvalidDefinition("environment variables apply to a stdio server (command)")
            return cls(url=spec)
        if "://" in spec:
            raise InvalidDefinition(
                f"{spec!r}: an MCP server is an http(s):// URL or a command to run over stdio"
            )
        try:
            argv = tuple(shlex.split(spec))
        except ValueError as exc:
            raise InvalidDefinition(f"cannot split the command {spec!r}: {exc}") from None
        if not argv:
            raise InvalidDefinition("give an MCP server: an http(s):// URL or a command")
        return cls(command=argv, env=tuple(sorted((env or {}).items())))

    def pinned(self) -> McpTarget:
        """A command as it runs here and now: the program found on this ``PATH`` and this
        working directory, so it runs the same when the API server starts it later."""
        if self.url is not None:
            return self
        program = shutil.which(self.command[0]) or self.command[0]
        return replace(self, command=(program, *self.command[1:]), cwd=self.cwd or os.getcwd())

    def runtime_fields(self) -> dict[str, Any]:
        """The ``mcp`` runtime fields (all but ``tool``) of a tool of this server."""
        if self.url is not None:
            return {"kind": "mcp", "url": self.url}
        fields = {"kind": "mcp", "command": list(self.command), "env": dict(self.env)}
        return {**fields, "cwd": self.cwd} if self.cwd else fields

    def describe(self) -> str:
        return self.url if self.url is not None else shlex.join(self.command)

    def client(self, read_timeout_s: float | None = None) -> Client:
        """An (unopened) SDK client for this server."""
        from mcp import Client, StdioServerParameters

        if self.url is not None:
            return Client(self.url, read_timeout_seconds=read_timeout_s, cache=None)
        params = StdioServerParameters(
            command=self.command[0], args=list(self.command[1:]), env=dict(self.env), cwd=self.cwd
        )
        return Client(params, read_timeout_seconds=read_timeout_s, cache=None)


def describe_error(exc: BaseException) -> str:
    """One line for an error out of the SDK: exception groups are unwrapped to their first."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Link:
    """One open session to a target, held open by a task of its own."""

    def __init__(self, target: McpTarget) -> None:
        self.target = target
        self.client: Client | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.client is not None and self._task is not None and not self._task.done()

    async def open(self, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        """Connect and shake hands; raises :class:`UpstreamError` when the server cannot be
        reached or does not speak MCP."""
        self._task = asyncio.create_task(self._hold(), name=f"mcp {self.target.describe()}")
        try:
            async with asyncio.timeout(timeout_s):
                await self._ready.wait()
        except TimeoutError:
            await self.aclose()
            raise UpstreamError(
                f"MCP server {self.target.describe()} did not answer within {timeout_s:g}s"
            ) from None
        except BaseException:  # cancelled while connecting: leave nothing behind
            await self.aclose()
            raise
        if self.client is None:
            await self.aclose()
            why = describe_error(self._error) if self._error else "it closed the connection"
            raise UpstreamError(f"cannot reach the MCP server {self.target.describe()}: {why}")

    async def _hold(self) -> None:
        try:
            async with self.target.client() as client:
                self.client = client
                self._ready.set()
                await self._stop.wait()
        except Exception as exc:  # the SDK's failures come in many types (and groups)
            self._error = exc
            if self.client is not None:
                log.warning("MCP link to %s ended: %s", self.target.describe(), describe_error(exc))
        finally:
            self.client = None
            self._ready.set()

    async def list_tools(self) -> list[McpTool]:
        """Every tool the server lists (all pages)."""
        client = self._client()
        tools: list[McpTool] = []
        cursor: str | None = None
        for _ in range(1000):
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        return await self._client().call_tool(name, arguments)

    def _client(self) -> Client:
        if self.client is None:
            raise UpstreamError(f"the connection to MCP server {self.target.describe()} is closed")
        return self.client

    async def aclose(self) -> None:
        """Close the session (a link still connecting is cancelled)."""
        self._stop.set()
        task, self._task = self._task, None
        if task is None:
            return
        if self.client is None:
            task.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def connect(target: McpTarget, timeout_s: float = CONNECT_TIMEOUT_S) -> Any:
    """An open :class:`Link` for the ``async with`` block."""
    link = Link(target)
    await link.open(timeout_s)
    try:
        yield link
    finally:
        await link.aclose()


def _retrieve(task: asyncio.Task[Link]) -> None:
    if not task.cancelled():
        task.exception()


class LinkPool:
    """Open links by target, the least recently used closed beyond ``max_links``."""

    def __init__(self, max_links: int = MAX_LINKS) -> None:
        self.max_links = max_links
        self._links: OrderedDict[McpTarget, Link] = OrderedDict()
        self._opening: dict[McpTarget, asyncio.Task[Link]] = {}

    async def get(self, target: McpTarget) -> Link:
        """An open link to ``target``, opened (once, however many callers wait) if needed."""
        link = self._links.get(target)
        if link is not None and link.alive:
            self._links.move_to_end(target)
            return link
        if link is not None:
            await self.discard(target, link)
        task = self._opening.get(target)
        if task is None:
            task = asyncio.create_task(self._open(target))
            task.add_done_callback(_retrieve)  # its waiters may all have gone
            self._opening[target] = task
        return await asyncio.shield(task)

    async def _open(self, target: McpTarget) -> Link:
        try:
            link = Link(target)
            await link.open()
            self._links[target] = link
            while len(self._links) > self.max_links:
                _, oldest = self._links.popitem(last=False)
                await oldest.aclose()
            return link
        finally:
            self._opening.pop(target, None)

    async def discard(self, target: McpTarget, link: Link) -> None:
        """Forget ``link`` (a broken one) and close it; the next call opens another."""
        if self._links.get(target) is link:
            del self._links[target]
        await link.aclose()

    async def aclose(self) -> None:
        links = list(self._links.values())
        self._links.clear()
        await asyncio.gather(*(link.aclose() for link in links), return_exceptions=True)
