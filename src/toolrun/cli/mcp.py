"""``toolrun mcp`` (the registry over stdio) and ``toolrun register --mcp`` (import a server)."""

from __future__ import annotations

import asyncio
from typing import Any

from toolrun.cli.local import filter_option
from toolrun.config import Settings
from toolrun.errors import InvalidDefinition
from toolrun.platform import Platform


def parse_filter_json(filter_json: str | None) -> dict[str, Any] | None:
    raw = filter_option(filter_json)
    if raw is None:
        return None
    from toolrun.mcp.server import parse_mcp_filter

    parse_mcp_filter(raw)  # its errors name the bad operator or path
    return raw


def serve(settings: Settings, filter_json: str | None, log_level: str) -> None:
    """Serve MCP on stdin/stdout until the client hangs up (logs go to stderr)."""
    from toolrun.cli.serve import configure_logging, protect_process_secrets
    from toolrun.mcp.stdio import serve_stdio

    where = parse_filter_json(filter_json)
    configure_logging(log_level)
    protect_process_secrets()
    asyncio.run(serve_stdio(settings, filter=where))


def parse_env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidDefinition(f"--env {pair!r} is not KEY=VALUE")
        env[key] = value
    return env


def register_server(
    settings: Settings, spec: str, namespace: str | None, env_pairs: list[str]
) -> list[str]:
    """Import every tool of the MCP server ``spec`` (URL or command) under ``namespace``; a
    command is stored as it runs here (its program's full path, this working directory)."""
    from toolrun.mcp.client import McpTarget
    from toolrun.mcp.importer import fetch_tools

    if not namespace:
        raise InvalidDefinition("give --namespace NS: the imported tools are named NS_<tool>")
    target = McpTarget.parse(spec, parse_env(env_pairs)).pinned()
    tools = asyncio.run(fetch_tools(target, namespace))
    platform = Platform(settings)
    platform.migrate()
    return [platform.tools.upsert(tool).id for tool in tools]
