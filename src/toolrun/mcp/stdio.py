"""``toolrun mcp``: the registry as an MCP server on stdin/stdout (one client, one process).

While it serves, file descriptor 1 points at stderr (the SDK's doing), so nothing but MCP
messages reaches stdout: logs, worker processes and tools that print all write to stderr.
The platform starts after that, and stops when the client closes stdin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from toolrun.config import Settings
from toolrun.platform import Platform


async def serve_stdio(settings: Settings, *, filter: Mapping[str, Any] | None = None) -> None:
    """Serve the tools matching ``filter`` until the client hangs up."""
    from mcp.server.stdio import stdio_server

    from toolrun.mcp.server import build_server, parse_mcp_filter

    parse_mcp_filter(filter)  # a bad filter fails before anything starts
    async with stdio_server() as (read_stream, write_stream):
        platform = Platform(settings)
        await platform.start()
        try:
            server = build_server(platform, filter=filter)
            await server.run(read_stream, write_stream, server.create_initialization_options())
        finally:
            await platform.close()
