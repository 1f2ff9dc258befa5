"""The demo tools ``toolrun serve --demo`` registers: every example of the seeds, runnable."""

from __future__ import annotations

from pathlib import Path

from toolrun.demo import functions, open_functions
from toolrun.registry.decorators import tool_from_callable
from toolrun.registry.groups import ToolGroup
from toolrun.registry.runtimes import CommandRuntime, PythonRuntime
from toolrun.registry.tool import Tool

BIN_DIR = Path(__file__).parent / "bin"
BINARY_INCREMENT = "binary-increment-tool"


def binary_increment_tool() -> Tool:
    """Seed 002's binary tool: a real executable, called with the value as its argument."""
    return Tool(
        name=BINARY_INCREMENT,
        description="Increments an integer by one (a real executable).",
        tags=["math", "utils"],
        input_schema={
            "type": "object",
            "properties": {
                "value": {"type": "integer", "description": "The integer to increment."}
            },
            "required": ["value"],
            "additionalProperties": False,
        },
        output_schema={"type": "object", "properties": {"result": {"type": "integer"}}},
        runtime=CommandRuntime(
            command=[str(BIN_DIR / BINARY_INCREMENT)], mode="argv", args=["{value}"]
        ),
        policy={"timeout_s": 10},
    )


def group_tools(group: ToolGroup, attribute: str) -> list[Tool]:
    """A group's methods as stored tools named ``{namespace}_{method}`` (seed 001's names)."""
    namespace = str(group.namespace)
    tools = []
    for tool in group.tools(namespace):
        tools.append(
            tool.with_changes(
                name=f"{namespace}_{tool.name}",
                runtime=PythonRuntime(target=f"{open_functions.__name__}:{attribute}.{tool.name}"),
                tags=sorted({*tool.tags, namespace, "open-functions"}),
            )
        )
    return tools


def demo_tools() -> list[Tool]:
    weather_tags = ["weather", "location"]
    return [
        binary_increment_tool(),
        tool_from_callable(
            functions.weather_lookup,
            name="weather_lookup",
            version="v1.0.0-stable",
            namespace="weather",
            tags=weather_tags,
            metadata={"protocol": "python", "type": "function", "subtype": "lookup"},
        ),
        tool_from_callable(
            functions.weather_lookup_v2,
            name="weather_lookup",
            version="v2.0.0-beta",
            namespace="weather",
            tags=weather_tags,
        ),
        tool_from_callable(
            functions.compress_files, namespace="utilities", tags=["files", "utils"]
        ),
        tool_from_callable(functions.increment, namespace="math", tags=["math"]),
        *group_tools(open_functions.delivery, "delivery"),
        *group_tools(open_functions.weather, "weather"),
    ]
