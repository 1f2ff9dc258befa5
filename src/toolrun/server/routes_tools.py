"""Seed-002 tool management, once per family: ``/tool`` ... and ``/function`` ...

``POST /{family}``, ``GET|PUT|DELETE /{family}/{id}``, ``POST /{family}s`` (Mongo-style query),
``GET /{family}s`` (everything), ``POST /{family}/register/{id}`` (fetch from the configured
external registry).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Body, Depends, Query, Response
from starlette.concurrency import run_in_threadpool

from toolrun.errors import InvalidDefinition, ToolNotFound, UpstreamError
from toolrun.platform import Platform
from toolrun.registry.formats import openai_name, to_mcp, to_openai, to_seed, tool_from_any
from toolrun.registry.ids import ALIASES, ToolRef, Version, validate_name, validate_version
from toolrun.registry.query import parse_filter
from toolrun.registry.tool import DOCUMENT_FIELDS, Tool
from toolrun.server.deps import get_platform
from toolrun.server.shapes import Family, parse_family_filter, update_changes
from toolrun.server.trust import check_python_target, check_remote_write, remote_defaults

EXTERNAL_TIMEOUT_S = 10.0

TOOL_EXAMPLE = {
    "tool_id": "binary-increment-tool",
    "tool_search_tags": ["math", "utils"],
    "tool_description": "Adds one to an integer.",
    "tool_default_params": {},
    "tool_metadata": {
        "input_schema": {
            "type": "object",
            "properties": {"value": {"type": "integer"}},
            "required": ["value"],
        },
        "runtime": {
            "kind": "command",
            "command": ["/path/to/binary-increment-tool"],
            "mode": "argv",
            "args": ["{value}"],
        },
        "timeout_s": 10,
    },
}


def parse_tool(data: Any) -> Tool:
    if not isinstance(data, dict):
        raise InvalidDefinition(f"a tool is a JSON object, got {type(data).__name__}")
    return tool_from_any(data)  # its errors are InvalidDefinition already


ExportFormat = Literal["seed", "openai", "mcp", "toolrun"]


def render(tool: Tool, family: Family, fmt: ExportFormat = "seed") -> dict[str, Any]:
    """One tool in the asked format: the family's seed shape, an OpenAI ``tools[]`` entry,
    an MCP tool, or toolrun's own ``Tool`` JSON."""
    if fmt == "openai":
        return to_openai(tool, name=openai_name(tool.id))
    if fmt == "mcp":
        return to_mcp(tool, name=openai_name(tool.id))
    if fmt == "toolrun":
        return tool.model_dump(mode="json")
    return to_seed(tool, family)


FORMAT_QUERY = Query(
    "seed", alias="format", description="seed (default), openai (tools[] entries), mcp, toolrun"
)


def answers(wanted: ToolRef, tool: Tool) -> bool:
    """Whether ``tool`` is what the reference asked for: same name and, for an exact version,
    that version (``v1.0.0`` is answered by ``v1.0.0-stable``, as references resolve)."""
    if tool.name != wanted.name:
        return False
    if wanted.version is None or wanted.version in ALIASES or tool.version == wanted.version:
        return True
    try:
        asked, got = Version.parse(wanted.version), Version.parse(tool.version or "")
    except InvalidDefinition:
        return False
    return not asked.channel and got.stable and got.number == asked.number


def remote_check(platform: Platform) -> Callable[[Tool, Tool | None], None]:
    """Everything a remote write may not decide (see :mod:`toolrun.server.trust`)."""
    settings = platform.settings

    def is_registered(target: str) -> bool:
        where = parse_filter({"runtime.target": target}, roots=DOCUMENT_FIELDS)
        return bool(platform.tools.query(where, limit=1))

    def check(new: Tool, current: Tool | None) -> None:
        check_remote_write(new, current, settings.sandbox)
        check_python_target(new, current, settings.remote_python_modules, is_registered)

    return check


def remote_changes(body: dict[str, Any], current: Tool) -> dict[str, Any]:
    """The changes of a PUT, with the sandbox tier filled in for a command it sets."""
    changes = update_changes(body, current)
    try:
        proposed = current.with_changes(**changes)
    except InvalidDefinition:
        return changes  # the store rejects them with the right 422
    adjusted = remote_defaults(proposed, current)
    if adjusted.policy != proposed.policy:
        changes["policy"] = adjusted.policy.model_dump()
    return changes


def build_router(family: Family) -> APIRouter:
    router = APIRouter(tags=[f"{family}s"])
    single, plural = f"/{family}", f"/{family}s"

    @router.post(single, status_code=201, summary=f"Create a {family}")
    def create(
        body: dict[str, Any] = Body(openapi_examples={"seed": {"value": TOOL_EXAMPLE}}),
        platform: Platform = Depends(get_platform),
    ) -> dict[str, Any]:
        tool = remote_defaults(parse_tool(body))
        remote_check(platform)(tool, None)
        return to_seed(platform.tools.create(tool), family)

    @router.get(plural, summary=f"List every {family}, or those best matching ?q=")
    def list_all(
        limit: int | None = Query(None, ge=1, le=100_000),
        offset: int = Query(0, ge=0, le=10_000_000),
        q: str | None = Query(
            None, min_length=1, max_length=4096, description="Rank by search (best first)."
        ),
        k: int = Query(10, ge=1, le=100, description="With q: how many to return."),
        fmt: ExportFormat = FORMAT_QUERY,
        platform: Platform = Depends(get_platform),
    ) -> list[dict[str, Any]]:
        if q is not None:
            from toolrun.server.routes_search import ranked_tools

            return [render(t, family, fmt) for t, _ in ranked_tools(platform, q, k, family=family)]
        found = platform.tools.query(None, limit=limit, offset=offset)
        return [render(t, family, fmt) for t in found]

    @router.post(plural, summary=f"Query {family}s with a Mongo-style filter")
    def query(
        body: dict[str, Any] | None = Body(
            None,
            openapi_examples={"tags": {"value": {f"{family}_search_tags": {"$in": ["math"]}}}},
        ),
        limit: int | None = Query(None, ge=1, le=100_000),
        offset: int = Query(0, ge=0, le=10_000_000),
        fmt: ExportFormat = FORMAT_QUERY,
        platform: Platform = Depends(get_platform),
    ) -> list[dict[str, Any]]:
        where = parse_family_filter(body or {}, family)
        found = platform.tools.query(where, limit=limit, offset=offset)
        return [render(t, family, fmt) for t in found]

    @router.get(single + "/{tool_id}", summary=f"Get a {family} by id or reference")
    def get(
        tool_id: str, fmt: ExportFormat = FORMAT_QUERY, platform: Platform = Depends(get_platform)
    ) -> dict[str, Any]:
        return render(platform.tools.get(tool_id), family, fmt)

    @router.put(single + "/{tool_id}", summary=f"Update a {family} (partial)")
    def put(
        tool_id: str,
        body: dict[str, Any] = Body(
            openapi_examples={"description": {"value": {f"{family}_description": "Updated"}}}
        ),
        platform: Platform = Depends(get_platform),
    ) -> dict[str, Any]:
        tool = platform.tools.update(
            tool_id,
            lambda current: remote_changes(body, current),
            check=remote_check(platform),
        )
        return to_seed(tool, family)

    @router.delete(single + "/{tool_id}", summary=f"Delete a {family}")
    def remove(tool_id: str, platform: Platform = Depends(get_platform)) -> dict[str, Any]:
        deleted = platform.tools.delete(tool_id)
        return {"success": True, f"{family}_id": deleted}

    @router.post(
        single + "/register/{tool_id}", status_code=201, summary="Import from the external registry"
    )
    async def register_external(
        tool_id: str, response: Response, platform: Platform = Depends(get_platform)
    ) -> dict[str, Any]:
        data = await fetch_external(platform, family, tool_id)
        tool = parse_tool(data)
        if not answers(ToolRef.parse(tool_id), tool):
            raise UpstreamError(
                f"the external registry answered {tool_id!r} with a different tool, {tool.id!r}"
            )
        try:
            current: Tool | None = await run_in_threadpool(platform.tools.get, tool.id)
        except ToolNotFound:
            current = None
        tool = remote_defaults(tool, current)
        await run_in_threadpool(remote_check(platform), tool, current)
        stored = await run_in_threadpool(platform.tools.upsert, tool)
        response.headers["Location"] = f"{single}/{stored.id}"
        return to_seed(stored, family)

    return router


async def fetch_external(platform: Platform, family: Family, tool_id: str) -> Any:
    """``GET {base}/{family}/{id}`` on the external registry (falling back to ``/tool/{id}``)."""
    base = platform.settings.external_registry_url
    if not base:
        raise UpstreamError(
            "no external registry is configured: set TOOLRUN_EXTERNAL_REGISTRY_URL "
            "to the base URL of another toolrun (or any server answering GET {base}/tool/{id})"
        )
    ref = ToolRef.parse(tool_id)
    validate_name(ref.name)
    if ref.version:
        validate_version(ref.version)
    quoted = quote(tool_id, safe=":")
    paths = [f"/{family}/{quoted}"] + ([f"/tool/{quoted}"] if family != "tool" else [])
    async with httpx.AsyncClient(base_url=base.rstrip("/"), timeout=EXTERNAL_TIMEOUT_S) as client:
        last_status = 0
        for path in paths:
            try:
                reply = await client.get(path)
            except httpx.HTTPError as exc:
                raise UpstreamError(
                    f"external registry {base} unreachable: {type(exc).__name__}"
                ) from None
            if reply.status_code == 200:
                try:
                    return reply.json()
                except ValueError:
                    raise UpstreamError(
                        f"external registry answered {path} with something that is not JSON"
                    ) from None
            last_status = reply.status_code
            if reply.status_code != 404:
                break
    if last_status == 404:
        raise ToolNotFound(f"the external registry {base} has no {family} {tool_id!r}")
    raise UpstreamError(f"external registry {base} answered HTTP {last_status} for {tool_id!r}")
