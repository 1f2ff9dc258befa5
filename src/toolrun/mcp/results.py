"""Between toolrun's :class:`~toolrun.response.Response` and the SDK's ``CallToolResult``.

A Response is MCP-shaped already (``Response.to_dict()`` is a ``CallToolResult``'s wire form),
so both ways are a validation of the same dict; what toolrun adds (the job that ran the call)
travels in ``_meta.toolrun``.
"""

from __future__ import annotations

from typing import Any

from mcp_types import CallToolResult
from mcp_types import Tool as McpTool

from toolrun.registry.formats import to_mcp
from toolrun.registry.tool import Tool
from toolrun.response import Response

META_KEY = "toolrun"


def to_call_tool_result(response: Response, meta: dict[str, Any] | None = None) -> CallToolResult:
    """``response`` as the SDK's result; ``meta`` goes to ``_meta.toolrun``."""
    data = response.to_dict()
    if meta:
        data["_meta"] = {META_KEY: meta}
    return CallToolResult.model_validate(data)


def error_result(message: str) -> CallToolResult:
    """A tool-level error the model is shown (``isError``), not a protocol error."""
    return to_call_tool_result(Response.error(message))


def from_call_tool_result(result: CallToolResult) -> Response:
    """The SDK's result as a Response (content, structured value and ``isError`` kept)."""
    data = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    response = Response.from_dict(data)
    structured = data.get("structuredContent")
    if structured is not None and not isinstance(structured, dict):
        # 2026-07-28 allows any JSON value; toolrun's structured value is always an object.
        response = Response(response.is_error, response.content, {"result": structured})
    return response


def to_mcp_tool(tool: Tool, name: str) -> McpTool:
    """A stored tool as an MCP tool called ``name``; its toolrun id is in ``_meta.toolrun``."""
    data = to_mcp(tool, name=name)
    meta = data.setdefault("_meta", {})
    meta[META_KEY] = {**meta.get(META_KEY, {}), "id": tool.id}
    return McpTool.model_validate(data)
