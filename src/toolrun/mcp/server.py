"""The registry as an MCP server: ``tools/list`` from the store, ``tools/call`` as a job.

:func:`build_server` makes an SDK low-level ``Server`` over a :class:`~toolrun.platform.Platform`
for any transport (:mod:`toolrun.mcp.http` mounts it at ``/mcp``, :mod:`toolrun.mcp.stdio`
serves it on stdin/stdout). A filter (Mongo-style, over toolrun's tool documents, as
``toolrun ls --filter``) selects the tools offered: the others are neither listed nor
callable. Names are the tools' ids made MCP-safe (:mod:`toolrun.mcp.names`).

Every call goes through the executor, so it is validated, queued, run in the tool's tier and
recorded as a job like a REST call; the result is the job's Response as a ``CallToolResult``
with the job in ``_meta.toolrun``. Whatever goes wrong (an unknown tool, invalid arguments, a
full queue) is an ``isError`` result whose text says what, never a protocol error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp_types import (
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
)

from toolrun import __version__
from toolrun.errors import QueryError, ToolrunError
from toolrun.mcp.names import NameTable
from toolrun.mcp.results import error_result, to_call_tool_result, to_mcp_tool
from toolrun.platform import Platform
from toolrun.registry.query import Filter, matches, parse_filter
from toolrun.registry.tool import DOCUMENT_FIELDS, Tool
from toolrun.response import Response

log = logging.getLogger(__name__)
PAGE_SIZE = 500
INSTRUCTIONS = (
    "Tools of a toolrun registry. Each call runs as a job; the result's _meta.toolrun names it."
)


def parse_mcp_filter(raw: Mapping[str, Any] | None) -> Filter | None:
    """A Mongo-style filter over toolrun's tool documents (``{"tags": "math"}``)."""
    if not raw:
        return None
    if not isinstance(raw, Mapping):
        raise QueryError(f"an MCP filter is a JSON object, got {type(raw).__name__}")
    return parse_filter(dict(raw), roots=DOCUMENT_FIELDS)


class RegistryTools:
    """The tools of ``platform`` an MCP server offers, and their MCP names both ways."""

    def __init__(self, platform: Platform, where: Filter | None = None) -> None:
        self.platform = platform
        self.where = where
        self.names = NameTable()
        self._schemas: dict[str, dict[str, Any]] = {}

    async def refresh(self) -> list[tuple[str, Tool]]:
        """Read the offered tools from the store; ``(mcp name, tool)`` in name order."""
        tools = await asyncio.to_thread(self.platform.tools.query, self.where)
        names = NameTable(tool.id for tool in tools)
        by_id = {tool.id: tool for tool in tools}
        self.names = names
        self._schemas = {names.to_name[t.id]: t.input_schema for t in tools}
        return sorted((name, by_id[tool_id]) for name, tool_id in names.to_id.items())

    def input_schema(self, name: str) -> dict[str, Any] | None:
        """The schema last listed under ``name`` (the SDK checks ``Mcp-Param-*`` headers)."""
        return self._schemas.get(name)

    async def resolve(self, name: str) -> str | None:
        """The id of the offered tool called ``name``, or None."""
        tool_id = self.names.to_id.get(name)
        if tool_id is None:  # not listed yet (or since): read the store again
            await self.refresh()
            return self.names.to_id.get(name)
        if self.where is not None:  # it may have left the selection since it was listed
            tool = await asyncio.to_thread(self.platform.tools.get, tool_id)
            if not matches(self.where, tool.to_document()):
                return None
        return tool_id

    async def list_page(self, cursor: str | None) -> ListToolsResult:
        listed = await self.refresh()
        start = int(cursor) if cursor and cursor.isdigit() else 0
        page = listed[start : start + PAGE_SIZE]
        following = start + PAGE_SIZE if start + PAGE_SIZE < len(listed) else None
        return ListToolsResult(
            tools=[to_mcp_tool(tool, name) for name, tool in page],
            next_cursor=str(following) if following is not None else None,
        )

    async def call(self, name: str, arguments: dict[str, Any] | None) -> CallToolResult:
        """Run the tool called ``name`` as a job; every failure is an ``isError`` result."""
        try:
            tool_id = await self.resolve(name)
            if tool_id is None:
                return error_result(
                    f"unknown tool {name!r}: list the tools to see the names this server offers"
                )
            job = await self.platform.executor.invoke(tool_id, arguments or {})
        except ToolrunError as exc:
            return error_result(exc.message)
        except Exception as exc:  # never a protocol error; the log has the traceback
            log.exception("MCP call of %r failed", name)
            return error_result(f"internal error: {type(exc).__name__}")
        response = job.result or Response.error(job.error or f"job ended {job.status.value}")
        meta = {"job": job.id, "status": job.status.value, "tool_id": job.tool_id}
        return to_call_tool_result(response, meta)


def build_server(
    platform: Platform, *, filter: Mapping[str, Any] | None = None, name: str = "toolrun"
) -> Server[Any]:
    """An MCP server offering the tools of ``platform`` that match ``filter``."""
    tools = RegistryTools(platform, parse_mcp_filter(filter))

    async def list_tools(
        ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        return await tools.list_page(params.cursor if params is not None else None)

    async def call_tool(
        ctx: ServerRequestContext[Any], params: CallToolRequestParams
    ) -> CallToolResult:
        return await tools.call(params.name, params.arguments)

    return Server(
        name,
        version=__version__,
        instructions=INSTRUCTIONS,
        get_tool_input_schema=tools.input_schema,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
