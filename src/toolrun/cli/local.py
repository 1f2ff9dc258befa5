"""What the CLI does against the local data directory (no server needed)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

from toolrun.config import Settings
from toolrun.errors import ArgumentsInvalid, InvalidDefinition
from toolrun.platform import Platform
from toolrun.registry.query import parse_filter
from toolrun.registry.tool import DOCUMENT_FIELDS, Tool


def _platform(settings: Settings) -> Platform:
    platform = Platform(settings)
    platform.migrate()
    return platform


def filter_option(filter_json: str | None) -> dict[str, Any] | None:
    """The ``--filter`` option's JSON object (a Mongo-style filter, not yet parsed)."""
    if not filter_json:
        return None
    try:
        raw = json.loads(filter_json)
    except json.JSONDecodeError as exc:
        raise InvalidDefinition(f"--filter is not JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(raw, dict):
        raise InvalidDefinition('--filter must be a JSON object, e.g. \'{"tags": "math"}\'')
    return raw


def list_tools(settings: Settings, filter_json: str | None) -> list[str]:
    raw = filter_option(filter_json)
    where = parse_filter(raw, roots=DOCUMENT_FIELDS) if raw is not None else None
    tools = _platform(settings).tools.query(where)
    width = max((len(t.id) for t in tools), default=0)
    rows = []
    for t in tools:
        summary = t.description.splitlines()[0] if t.description else ""
        tags = ",".join(t.tags) or "-"
        rows.append(f"{t.id:<{width}}  {t.namespace or '-':<10}  {tags:<16}  {summary}")
    return rows


def show_tool(settings: Settings, tool_id: str) -> dict[str, Any]:
    tool = _platform(settings).tools.get(tool_id)
    return tool.model_dump(mode="json")


def load_source(source: str) -> list[Tool]:
    """Tools from a JSON file (one tool or a list, any accepted shape) or ``module:attr``."""
    from toolrun.registry.formats import tool_from_any

    path = Path(source)
    if source.endswith(".json") or path.is_file():
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise InvalidDefinition(f"no such file: {source}") from None
        except json.JSONDecodeError as exc:
            raise InvalidDefinition(
                f"{source} is not JSON: {exc.msg} (line {exc.lineno})"
            ) from None
        items = data if isinstance(data, list) else [data]
        return [tool_from_any(item) for item in items]
    module_name, sep, attr = source.partition(":")
    if not sep or not attr:
        raise InvalidDefinition(f"{source!r} is neither a .json file nor module:attr")
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidDefinition(f"cannot import {module_name!r}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise InvalidDefinition(f"{module_name!r} has no attribute {attr!r}") from None
    return tools_from_object(obj)


def tools_from_object(obj: Any) -> list[Tool]:
    from toolrun.registry.decorators import tool_from_callable
    from toolrun.registry.groups import ToolGroup

    if isinstance(obj, Tool):
        return [obj]
    if isinstance(obj, ToolGroup):
        return obj.tools()
    attached = getattr(obj, "__toolrun_tool__", None)
    if isinstance(attached, Tool):
        return [attached]
    if callable(obj):
        return [tool_from_callable(obj)]
    raise InvalidDefinition(f"{type(obj).__name__} is not a function, @tool, Tool or ToolGroup")


def register_source(settings: Settings, source: str) -> list[str]:
    tools = load_source(source)
    platform = _platform(settings)
    return [platform.tools.upsert(tool).id for tool in tools]


def parse_arguments(pairs: list[str], json_args: str | None) -> dict[str, Any]:
    """``key=value`` pairs (values parsed as JSON when they are JSON) and/or ``--json``."""
    arguments: dict[str, Any] = {}
    if json_args:
        try:
            loaded = json.loads(json_args)
        except json.JSONDecodeError as exc:
            raise ArgumentsInvalid(f"--json is not JSON: {exc.msg} at position {exc.pos}") from None
        if not isinstance(loaded, dict):
            raise ArgumentsInvalid("--json must be a JSON object")
        arguments.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ArgumentsInvalid(f"argument {pair!r} is not key=value")
        try:
            arguments[key] = json.loads(value)
        except json.JSONDecodeError:
            arguments[key] = value
    return arguments


async def call_tool(settings: Settings, tool_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    platform = Platform(settings)
    await platform.start()
    try:
        job = await platform.executor.invoke(tool_id, arguments)
    finally:
        await platform.close()
    if job.result is None:
        return {
            "isError": True,
            "content": [{"type": "text", "text": job.error or job.status.value}],
        }
    return job.result.to_dict()


def list_jobs(settings: Settings, limit: int) -> list[str]:
    jobs = _platform(settings).jobs.recent(limit=limit)
    return [
        f"{j.id}  {j.status.value:<9}  {j.tool_id:<32}  {j.created_at:%Y-%m-%d %H:%M:%S}"
        + (f"  {j.duration_ms:.1f} ms" if j.duration_ms is not None else "")
        for j in jobs
    ]
