"""Adapters between Tool and OpenAI, MCP and seed-002 shapes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolrun.errors import InvalidDefinition
from toolrun.registry.formats import (
    OPENAI_NAME_RE,
    detect_format,
    from_mcp,
    from_openai,
    from_seed,
    openai_name,
    seed_path_to_canonical,
    to_mcp,
    to_openai,
    to_seed,
    tool_from_any,
)
from toolrun.registry.runtimes import CommandRuntime, PythonRuntime
from toolrun.registry.tool import ExecutionPolicy, Tool

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"}},
    "required": ["city"],
}
OUTPUT_SCHEMA = {
    "type": "object",
    "properties": {"temperature": {"type": "number"}, "unit": {"type": "string"}},
}


@pytest.fixture
def weather() -> Tool:
    return Tool(
        name="weather_lookup",
        version="v1.0.0-stable",
        namespace="weather",
        description="Current weather of a city.",
        tags=["weather", "location"],
        input_schema=WEATHER_SCHEMA,
        output_schema=OUTPUT_SCHEMA,
        default_params={"unit": "C"},
        metadata={"owner": "team-a", "source_url": "https://example.com"},
        runtime=PythonRuntime(target="toolrun.demo.tools:weather_lookup"),
        policy=ExecutionPolicy(timeout_s=3, isolation="inline"),
    )


def test_openai_round_trip(weather: Tool) -> None:
    entry = to_openai(weather)
    assert entry == {
        "type": "function",
        "function": {
            "name": "weather_lookup",
            "description": "Current weather of a city.",
            "parameters": WEATHER_SCHEMA,
        },
    }
    back = from_openai(entry)
    assert (back.name, back.description, back.input_schema) == (
        weather.name,
        weather.description,
        weather.input_schema,
    )
    assert to_openai(back) == entry
    bare = from_openai({"name": "f", "parameters": WEATHER_SCHEMA, "strict": True})
    assert to_openai(bare)["function"]["strict"] is True
    assert from_openai({"type": "function", "function": {"name": "g"}}).input_schema == {
        "type": "object",
        "properties": {},
    }


def test_openai_names_are_made_safe() -> None:
    dotted = Tool(name="weather.lookup", input_schema={"properties": {}})
    entry = to_openai(dotted)
    assert entry["function"]["name"] == "weather_lookup"
    assert entry["function"]["parameters"] == {"type": "object", "properties": {}}
    assert to_openai(dotted, name="custom")["function"]["name"] == "custom"
    with pytest.raises(InvalidDefinition, match="OpenAI needs"):
        to_openai(dotted, name="bad name")


@given(st.text(max_size=200))
def test_openai_name_always_matches_the_regex(raw: str) -> None:
    name = openai_name(raw)
    assert OPENAI_NAME_RE.match(name)
    assert name == openai_name(raw)
    if OPENAI_NAME_RE.match(raw):
        assert name == raw


def test_openai_errors() -> None:
    with pytest.raises(InvalidDefinition, match="'name' is required"):
        from_openai({"type": "function", "function": {"description": "x"}})
    with pytest.raises(InvalidDefinition, match="only type 'function'"):
        from_openai({"type": "code_interpreter"})
    with pytest.raises(InvalidDefinition, match="input_schema must describe an object"):
        from_openai({"name": "f", "parameters": {"type": "array"}})


def test_mcp_round_trip(weather: Tool) -> None:
    annotated = weather.with_changes(
        metadata={
            **weather.metadata,
            "title": "Weather",
            "annotations": {"readOnlyHint": True},
            "_meta": {"vendor/x": 1},
        }
    )
    entry = to_mcp(annotated)
    assert entry == {
        "name": "weather_lookup",
        "title": "Weather",
        "description": "Current weather of a city.",
        "inputSchema": WEATHER_SCHEMA,
        "outputSchema": OUTPUT_SCHEMA,
        "annotations": {"readOnlyHint": True},
        "_meta": {
            "vendor/x": 1,
            "toolrun": {
                "version": "v1.0.0-stable",
                "namespace": "weather",
                "tags": ["weather", "location"],
            },
        },
    }
    back = from_mcp(entry)
    assert back.id == weather.id
    assert (back.namespace, back.tags, back.output_schema) == (
        weather.namespace,
        weather.tags,
        OUTPUT_SCHEMA,
    )
    assert back.metadata == {
        "title": "Weather",
        "annotations": {"readOnlyHint": True},
        "_meta": {"vendor/x": 1},
    }
    assert to_mcp(back) == entry


def test_mcp_minimal_and_errors() -> None:
    plain = Tool(name="f")
    assert to_mcp(plain) == {
        "name": "f",
        "description": "",
        "inputSchema": {"type": "object", "properties": {}},
    }
    assert from_mcp(to_mcp(plain)) == plain
    with pytest.raises(InvalidDefinition, match="'inputSchema' is required"):
        from_mcp({"name": "f"})
    with pytest.raises(InvalidDefinition, match="'title' must be str"):
        from_mcp({"name": "f", "inputSchema": {}, "title": 3})


@pytest.mark.parametrize("family", ["tool", "function"])
def test_seed_round_trip(weather: Tool, family: Any) -> None:
    doc = to_seed(weather, family)
    p = family
    assert doc == {
        f"{p}_id": "weather_lookup:v1.0.0-stable",
        f"{p}_search_tags": ["weather", "location"],
        f"{p}_metadata": {
            "owner": "team-a",
            "source_url": "https://example.com",
            "input_schema": WEATHER_SCHEMA,
            "output_schema": OUTPUT_SCHEMA,
            "runtime": {"kind": "python", "target": "toolrun.demo.tools:weather_lookup"},
            "version": "v1.0.0-stable",
            "namespace": "weather",
            "timeout_s": 3.0,
            "isolation": "inline",
        },
        f"{p}_description": "Current weather of a city.",
        f"{p}_default_params": {"unit": "C"},
    }
    assert from_seed(doc, family) == weather
    assert tool_from_any(doc) == weather


def test_seed_from_dict_aliases_and_versions() -> None:
    tool = from_seed(
        {
            "tool_id": "binary-increment-tool",
            "tool_tags": ["math", "utils"],
            "tool_metadata": {
                "runtime": {"kind": "command", "command": "python3 increment.py"},
                "language": "python",
            },
            "tool_description": "Adds one.",
        }
    )
    assert tool.id == "binary-increment-tool"
    assert tool.tags == ["math", "utils"]
    assert tool.runtime == CommandRuntime(command=["python3", "increment.py"])
    assert tool.metadata == {"language": "python"}
    function = from_seed(
        {"function_id": "weather_lookup", "function_metadata": {"version": "v2.0.0-beta"}},
        "function",
    )
    assert function.id == "weather_lookup:v2.0.0-beta"
    assert from_seed({"function_id": "weather_lookup:v1.0.0-stable"}, "function").version == (
        "v1.0.0-stable"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tool_description": "x"}, "'tool_id' is required"),
        ({"tool_id": "a b"}, "invalid tool name 'a b'"),
        ({"tool_id": "f:1"}, "invalid version '1'"),
        ({"tool_id": "f", "tool_search_tags": "math"}, "'tool_search_tags' must be list"),
        ({"tool_id": "f", "tool_search_tags": [1]}, "must be a list of strings"),
        ({"tool_id": "f", "tool_desc": "x"}, "unknown field\\(s\\) tool_desc"),
        ({"function_id": "f"}, "look like a function document"),
        ({"tool_id": "f:v1.0.0", "tool_metadata": {"version": "v2.0.0"}}, "make them agree"),
        ({"tool_id": "f", "tool_metadata": {"runtime": "docker"}}, "must be an object such as"),
        (
            {"tool_id": "f", "tool_metadata": {"runtime": {"kind": "python", "target": "x"}}},
            "tool_metadata.runtime.python.target",
        ),
        (
            {"tool_id": "f", "tool_metadata": {"input_schema": {"type": "array"}}},
            "input_schema must describe an object",
        ),
        ({"tool_id": "f", "tool_metadata": {"isolation": "vm"}}, "tool_metadata.isolation"),
        ({"tool_id": "f", "tool_metadata": {"timeout_s": -1}}, "tool_metadata.timeout_s"),
        ([], "must be a JSON object"),
    ],
)
def test_seed_errors_are_actionable(data: Any, message: str) -> None:
    with pytest.raises(InvalidDefinition, match=message):
        from_seed(data, "tool")


def test_seed_family_is_checked() -> None:
    with pytest.raises(InvalidDefinition, match="family must be"):
        to_seed(Tool(name="f"), "widget")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "canonical"),
    [
        ("tool_id", "id"),
        ("tool_search_tags", "tags"),
        ("tool_tags", "tags"),
        ("tool_description", "description"),
        ("tool_default_params", "default_params"),
        ("tool_default_params.unit", "default_params.unit"),
        ("tool_metadata", "metadata"),
        ("tool_metadata.input_schema", "input_schema"),
        ("tool_metadata.input_schema.properties.city", "input_schema.properties.city"),
        ("tool_metadata.output_schema", "output_schema"),
        ("tool_metadata.runtime.kind", "runtime.kind"),
        ("tool_metadata.version", "version"),
        ("tool_metadata.namespace", "namespace"),
        ("tool_metadata.timeout_s", "policy.timeout_s"),
        ("tool_metadata.isolation", "policy.isolation"),
        ("tool_metadata.owner", "metadata.owner"),
        ("tool_metadata.owner.team", "metadata.owner.team"),
        ("tags", "tags"),
        ("policy.timeout_s", "policy.timeout_s"),
        ("metadata.owner", "metadata.owner"),
    ],
)
def test_seed_paths(path: str, canonical: str) -> None:
    assert seed_path_to_canonical(path, "tool") == canonical
    function_path = path.replace("tool_", "function_", 1)
    assert seed_path_to_canonical(function_path, "function") == canonical


def test_seed_paths_follow_the_document(weather: Tool) -> None:
    """Every seed path lands on the same value in toolrun's document."""
    seed, doc = to_seed(weather), weather.to_document()

    def at(data: Any, path: str) -> Any:
        for part in path.split("."):
            data = data[part]
        return data

    paths = [
        "tool_id",
        "tool_metadata.timeout_s",
        "tool_metadata.runtime.target",
        "tool_metadata.owner",
        "tool_default_params.unit",
        "tool_search_tags",
    ]
    for path in paths:
        assert at(seed, path) == at(doc, seed_path_to_canonical(path, "tool"))


def test_tool_from_any_detects_each_shape(weather: Tool) -> None:
    assert tool_from_any(weather.to_document()) == weather
    assert tool_from_any(weather.model_dump(mode="json")) == weather
    assert tool_from_any({"id": "weather_lookup:v1.0.0-stable"}).version == "v1.0.0-stable"
    assert tool_from_any(to_openai(weather)).input_schema == WEATHER_SCHEMA
    assert tool_from_any({"name": "f", "parameters": WEATHER_SCHEMA}).input_schema == (
        WEATHER_SCHEMA
    )
    assert tool_from_any(to_mcp(weather)).output_schema == OUTPUT_SCHEMA
    assert tool_from_any(to_seed(weather, "function")) == weather
    assert detect_format({"foo": 1}) == "unknown"
    with pytest.raises(InvalidDefinition, match="unrecognised tool definition \\(keys: foo\\)"):
        tool_from_any({"foo": 1})
    with pytest.raises(InvalidDefinition, match="disagrees"):
        tool_from_any({"id": "a:v1.0.0", "name": "b"})
    with pytest.raises(InvalidDefinition, match="extra: Extra inputs are not permitted"):
        tool_from_any({"name": "f", "extra": 1})
