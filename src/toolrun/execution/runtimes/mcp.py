"""``mcp`` runtimes: a tool of another MCP server, called over Streamable HTTP or stdio.

One session per server stays open across calls (:class:`~toolrun.mcp.client.LinkPool`); a
stdio server is started on the first call and runs until the runner closes, as the user the
API runs as, with only the runtime's ``env`` added to a minimal environment (which is why
only the operator may register one; see :mod:`toolrun.server.trust`). The remote result is
the call's Response as it came; an unreachable server, a broken session or a protocol error
is an ``isError`` Response saying so, and a call past its time limit a timeout.
"""

from __future__ import annotations

import asyncio
from typing import Any

from toolrun.errors import NotExecutable, ToolrunError
from toolrun.execution.runtimes.base import RuntimeRunner
from toolrun.mcp.client import LinkPool, McpTarget, describe_error
from toolrun.registry.runtimes import McpRuntime
from toolrun.registry.tool import Tool
from toolrun.response import Response


class McpRunner(RuntimeRunner):
    """Runs ``mcp`` runtimes; see the module docstring."""

    def __init__(self, pool: LinkPool | None = None) -> None:
        self.pool = pool or LinkPool()

    async def close(self) -> None:
        await self.pool.aclose()

    async def check(self, tool: Tool) -> None:
        runtime = tool.runtime
        if isinstance(runtime, McpRuntime) and runtime.command and tool.isolation == "sandbox":
            raise NotExecutable(
                f"tool {tool.id!r}: a stdio MCP server runs as a host process; the sandbox "
                "tier cannot run it (give it isolation 'process', as the operator)"
            )

    async def run(self, tool: Tool, arguments: dict[str, Any], timeout_s: float) -> Response:
        runtime = tool.runtime
        if not isinstance(runtime, McpRuntime):
            raise NotExecutable(f"tool {tool.id!r} does not have an mcp runtime")
        await self.check(tool)
        target = McpTarget.from_runtime(runtime)
        where = f"{runtime.tool!r} on MCP server {target.describe()}"
        deadline = asyncio.timeout(timeout_s)
        try:
            async with deadline:
                link = await self.pool.get(target)
                try:
                    result = await link.call_tool(runtime.tool, arguments)
                except Exception as exc:
                    if not _answered(exc):  # the session broke: the next call opens another
                        await self.pool.discard(target, link)
                    raise
        except TimeoutError:
            if not deadline.expired():
                raise
            return Response.timed_out(timeout_s)
        except ToolrunError as exc:
            return Response.error(exc.message)
        except Exception as exc:
            return Response.error(f"calling {where} failed: {describe_error(exc)}")
        from toolrun.mcp.results import from_call_tool_result

        return from_call_tool_result(result)


def _answered(exc: Exception) -> bool:
    """Whether the server itself answered with an error (the session is fine)."""
    from mcp import MCPError
    from mcp_types import CONNECTION_CLOSED

    return isinstance(exc, MCPError) and exc.code != CONNECTION_CLOSED
