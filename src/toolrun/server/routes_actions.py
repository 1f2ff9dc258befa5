"""Code actions (seed 004's composition): ``POST /actions`` runs Python that calls registry
tools in loops, branches and fan-outs.

The code runs in the sandbox tier (:mod:`toolrun.execution.scripts`); the tools it may call
are the ones the request names (``tools``) or matches (``filter``), importable from the
module ``tools`` under Python names made from their names (``binary-increment-tool`` is
``tools.binary_increment_tool``). Every call is a job of its own with that tool's limits; the
answer has the code's printed output, its error if it failed, and the trace of calls.
"""

from __future__ import annotations

import ast
import keyword
import re
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from toolrun.errors import ArgumentsInvalid
from toolrun.execution.scripts import ScriptRunner
from toolrun.platform import Platform
from toolrun.registry.query import parse_filter
from toolrun.registry.tool import DOCUMENT_FIELDS, Tool
from toolrun.server.deps import get_platform

router = APIRouter(tags=["composition"])
MODULE = "tools"
MAX_TOOLS = 200


class ActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=200_000, description="Python to run.")
    tools: list[str] | None = Field(
        None, max_length=MAX_TOOLS, description="Ids of the tools the code may call."
    )
    filter: dict[str, Any] | None = Field(
        None, description="Mongo-style filter choosing the tools the code may call."
    )
    timeout_s: float = Field(30.0, gt=0, le=600, description="Wall-clock limit for the code.")


def python_name(tool: Tool) -> str:
    """The name a tool has inside the ``tools`` module: its name as an identifier."""
    name = re.sub(r"\W", "_", tool.name, flags=re.ASCII)
    if not name or name[0].isdigit():
        name = "_" + name
    return name + "_" if keyword.iskeyword(name) else name


def offered_tools(platform: Platform, body: ActionRequest) -> dict[str, Tool]:
    """``{python name: tool}`` for the request; a clear 4xx for anything it cannot be."""
    if body.tools is None and body.filter is None:
        raise ArgumentsInvalid("name the tools the code may call: give 'tools' or 'filter'")
    chosen: dict[str, Tool] = {}
    for tool_id in body.tools or []:
        tool = platform.tools.get(tool_id)  # ToolNotFound: a 404 naming it
        chosen[tool.id] = tool
    if body.filter is not None:
        where = parse_filter(dict(body.filter), roots=DOCUMENT_FIELDS)
        for tool in platform.tools.query(where, limit=MAX_TOOLS + 1):
            chosen[tool.id] = tool
    if len(chosen) > MAX_TOOLS:
        raise ArgumentsInvalid(f"at most {MAX_TOOLS} tools may be offered to one action")
    by_name: dict[str, Tool] = {}
    for tool in chosen.values():
        name = python_name(tool)
        if name in by_name:
            raise ArgumentsInvalid(
                f"tools {by_name[name].id!r} and {tool.id!r} would both be tools.{name}; "
                "offer one version of each tool"
            )
        by_name[name] = tool
    return by_name


def check_code(code: str) -> None:
    try:
        ast.parse(code, "<action>")
    except SyntaxError as exc:
        raise ArgumentsInvalid(
            f"the code does not parse: {exc.msg} (line {exc.lineno}, column {exc.offset})"
        ) from None


@router.post("/actions", summary="Run Python that calls registry tools, in the sandbox")
async def run_action(
    body: ActionRequest, platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    check_code(body.code)
    tools = await run_in_threadpool(offered_tools, platform, body)
    runner = ScriptRunner(platform.settings, platform.executor.invoke)
    result = await runner.run(body.code, {MODULE: dict(tools)}, timeout_s=body.timeout_s)
    answer = result.to_dict()
    answer["functions"] = {f"{MODULE}.{name}": tool.id for name, tool in tools.items()}
    return answer
