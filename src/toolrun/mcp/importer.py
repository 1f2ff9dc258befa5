"""Importing the tools of an MCP server into the registry, under a namespace.

Each remote tool ``echo`` of a server imported as ``notes`` becomes the toolrun tool
``notes_echo`` (namespace ``notes``, tags ``mcp`` and ``notes``) with the remote description
and schemas and an ``mcp`` runtime that calls ``echo`` on that server. A name that would be
longer than toolrun allows is cut and given a short hash. Either every tool converts or the
import fails naming the one that did not: nothing is half-imported.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from toolrun.errors import InvalidDefinition, ToolrunError, UpstreamError
from toolrun.mcp.client import CONNECT_TIMEOUT_S, McpTarget, connect, describe_error
from toolrun.registry.formats import from_mcp
from toolrun.registry.ids import validate_name
from toolrun.registry.tool import Tool

if TYPE_CHECKING:
    from mcp_types import Tool as McpTool

MAX_NAME = 128
MCP_TAG = "mcp"


def local_name(namespace: str, remote: str) -> str:
    """``{namespace}_{remote}``, cut to toolrun's 128 characters with a hash if longer."""
    name = f"{namespace}_{remote}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(remote.encode("utf-8")).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}_{digest}"


def check_namespace(namespace: str) -> str:
    try:
        return validate_name(namespace)
    except InvalidDefinition:
        raise InvalidDefinition(
            f"invalid namespace {namespace!r}: use letters, digits, '_', '.' or '-' "
            "(it starts the name of every imported tool)"
        ) from None


def to_tool(remote: McpTool, target: McpTarget, namespace: str) -> Tool:
    """One remote tool as a toolrun tool with an ``mcp`` runtime (see the module docstring)."""
    data = remote.model_dump(by_alias=True, mode="json", exclude_none=True)
    data.pop("_meta", None)  # a toolrun server's own version/namespace do not carry over
    try:
        tool = from_mcp(data)
        return tool.with_changes(
            name=local_name(namespace, remote.name),
            version=None,
            namespace=namespace,
            tags=[MCP_TAG, namespace],
            runtime={**target.runtime_fields(), "tool": remote.name},
        )
    except InvalidDefinition as exc:
        raise InvalidDefinition(
            f"cannot import {remote.name!r} from {target.describe()}: {exc.message}"
        ) from None


async def fetch_tools(
    target: McpTarget, namespace: str, timeout_s: float = CONNECT_TIMEOUT_S
) -> list[Tool]:
    """The tools of the server at ``target`` as toolrun tools (not stored)."""
    check_namespace(namespace)
    async with connect(target, timeout_s) as link:
        try:
            remote = await link.list_tools()
        except ToolrunError:
            raise
        except Exception as exc:
            raise UpstreamError(
                f"listing the tools of MCP server {target.describe()} failed: "
                + describe_error(exc)
            ) from None
    if not remote:
        raise UpstreamError(f"the MCP server {target.describe()} lists no tools")
    tools = [to_tool(entry, target, namespace) for entry in remote]
    names = [tool.name for tool in tools]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise InvalidDefinition(f"imported tools would share the names {clashes}")
    return tools
