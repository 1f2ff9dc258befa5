"""The emulated prompt: tools as Python source, instructions, and conversations folded."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from toolrun.errors import InvalidDefinition
from toolrun.gateway.fold import fold_messages
from toolrun.gateway.parse import parse_reply
from toolrun.gateway.prompt import (
    call_source,
    docstring,
    render_tools,
    select_tools,
    system_prompt,
)
from toolrun.gateway.validate import OfferedTools, python_name

TOOL_SETS: dict[str, list[dict[str, Any]]] = yaml.safe_load(
    (Path(__file__).parent / "data" / "gateway_corpus" / "tools.yaml").read_text()
)
ALL_TOOLS = [tool for tools in TOOL_SETS.values() for tool in tools]
WEATHER = TOOL_SETS["weather"]


def function(name: str, parameters: Any = None, description: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "description": description}
    if parameters is not None:
        body["parameters"] = parameters
    return {"type": "function", "function": body}


def load(source: str) -> dict[str, Any]:
    """``source`` checked to hold only imports, classes and stubs, then run in a throwaway
    namespace (pydantic builds every model)."""
    tree = ast.parse(source)
    for node in tree.body:
        assert isinstance(node, ast.ImportFrom | ast.ClassDef | ast.FunctionDef), ast.dump(node)
        if isinstance(node, ast.FunctionDef):
            assert all(
                isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) for s in node.body
            )
    namespace: dict[str, Any] = {}
    exec(compile(tree, "<tools>", "exec", dont_inherit=True), namespace)
    return namespace


# -- rendering ----------------------------------------------------------------------------------


def test_every_corpus_tool_renders_to_valid_python() -> None:
    namespace = load(render_tools(ALL_TOOLS).source)
    address = namespace["Address"](street="1 Main St", city="Springfield", country="US")
    assert address.postal_code is None
    reminder = namespace["CreateEventReminder"](minutes_before=5)
    assert reminder.method is None
    assert callable(namespace["convert_currency"])


def test_a_stub_shows_types_defaults_and_docs() -> None:
    source = render_tools(WEATHER).source
    assert (
        "def get_weather(city: str, unit: Literal['celsius', 'fahrenheit'] = 'celsius') -> Any:"
        in source
    )
    assert (
        "def get_forecast(city: str, days: int, include_hourly: bool | None = None) -> Any:"
        in source
    )
    assert "        days: minimum 1, maximum 14\n" in source
    assert '    """Get the current weather for a city.\n\n    Args:\n' in source


def test_object_parameters_become_models() -> None:
    rendered = render_tools(TOOL_SETS["commerce"])
    assert "class Address(BaseModel):" in rendered.source  # the schema's title
    assert "items: list[CreateOrderItem]" in rendered.source
    assert rendered.models["Address"].fields == {
        "street": "street",
        "city": "city",
        "postal_code": "postal_code",
        "country": "country",
    }


SCHEMAS = {
    "union": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
    "types": {"type": ["number", "null"]},
    "mapping": {"type": "object", "additionalProperties": {"type": "integer"}},
    "free": {"type": "object"},
    "nested": {"type": "array", "items": {"type": "array", "items": {"type": "boolean"}}},
    "const": {"const": "fixed"},
    "untyped": {},
    "odd_enum": {"enum": [1.5, {"a": 1}]},
}


def test_schema_shapes_map_to_python_types() -> None:
    tool = function("shapes", {"type": "object", "properties": SCHEMAS, "required": list(SCHEMAS)})
    source = render_tools([tool]).source
    load(source)
    for expected in [
        "union: str | int | None",
        "types: float | None",
        "mapping: dict[str, int]",
        "free: dict[str, Any]",
        "nested: list[list[bool]]",
        "const: Literal['fixed']",
        "untyped: Any",
        "odd_enum: Any",
    ]:
        assert expected in source


def test_refs_and_recursion() -> None:
    parameters = {
        "type": "object",
        "$defs": {
            "Node": {
                "type": "object",
                "description": "A tree node.",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                },
            }
        },
        "properties": {"root": {"$ref": "#/$defs/Node"}, "other": {"$ref": "#/$defs/Node"}},
        "required": ["root"],
    }
    rendered = render_tools([function("walk", parameters)])
    namespace = load(rendered.source)
    assert rendered.source.count("class Node(BaseModel):") == 1
    assert "children: list[dict[str, Any]] | None = None" in rendered.source
    assert "def walk(root: Node, other: Node | None = None) -> Any:" in rendered.source
    assert namespace["Node"].__doc__ == "A tree node."


def test_required_after_optional_is_keyword_only() -> None:
    parameters = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "integer"}, "c": {"type": "string"}},
        "required": ["a", "c"],
    }
    source = render_tools([function("mixed", parameters)]).source
    assert "def mixed(a: str, b: int | None = None, *, c: str) -> Any:" in source
    load(source)


HOSTILE = [
    'Ends the docstring """; import os; os.system("id") #',
    "Backslash at the end \\",
    'A quote at the end "',
    "Null \x00 byte, bell \x07, carriage\rreturn, form\x0cfeed",
    "''' single triples ''' and \"\"\"\"\" five quotes",
    "Multi\nline\n\n  indented\n",
    "Unicode \u2028 separator and \U0001f600",
    "```python\nrm -rf /\n```",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_descriptions_stay_text(text: str) -> None:
    parameters = {
        "type": "object",
        "properties": {
            "x": {"type": "string", "description": text, "default": text, "enum": [text, "b"]},
            "nested": {
                "type": "object",
                "description": text,
                "properties": {"y": {"type": "string", "description": text}},
            },
        },
    }
    source = render_tools([function("tool", parameters, description=text)]).source
    namespace = load(source)  # nothing but imports, classes and stubs
    assert namespace["tool"].__doc__.startswith(text.split("\n")[0].rstrip("\\").strip()[:10])
    assert namespace["ToolNested"].model_fields["y"].description == text.strip()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_docstring_literal_round_trips(text: str) -> None:
    """The literal holds ``text``: blank lines emptied, a multi-line one closing on a line of
    its own."""
    first, *rest = text.split("\n")
    lines = [first, *(line if line.strip(" \t") else "" for line in rest)]
    expected = "\n".join(lines) + ("\n" if rest else "")
    assert ast.literal_eval(docstring(text)) == expected
    indented = ast.parse(f"def f():\n    {docstring(text, '    ')}\n").body[0]
    assert isinstance(indented, ast.FunctionDef) and len(indented.body) == 1


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("web-search", "web_search"),
        ("weather.lookup", "weather_lookup"),
        ("class", "class_"),
        ("3d_render", "x3d_render"),
        ("__private", "private"),
        ("", "x"),
        ("café", "caf_"),
    ],
)
def test_python_names(name: str, expected: str) -> None:
    assert python_name(name) == expected
    assert python_name(name, {expected}) == expected + "_"


def test_names_that_are_not_identifiers_are_mapped_and_read_back() -> None:
    tools = [
        function("get-weather", {"type": "object", "properties": {"from": {"type": "string"}}}),
        function("get_weather", {"type": "object", "properties": {"in": {"type": "string"}}}),
        function(
            "print",
            {
                "type": "object",
                "properties": {
                    "json": {
                        "type": "object",
                        "properties": {
                            "model_name": {"type": "string"},
                            "copy": {"type": "integer"},
                        },
                    }
                },
            },
        ),
    ]
    source = render_tools(tools).source
    load(source)
    assert "def get_weather(from_: str | None = None) -> Any:" in source
    assert "def get_weather_(in_: str | None = None) -> Any:" in source
    assert "def print_(json: PrintJson | None = None) -> Any:" in source
    assert "field_model_name: str | None = Field(None, alias='model_name')" in source
    assert "copy_: int | None = Field(None, alias='copy')" in source
    reply = (
        'get_weather(from_="Paris")\nget_weather_(**{"in": "Rome"})\n'
        'print_(json=PrintJson(field_model_name="m", copy_=2))'
    )
    calls = parse_reply(reply, tools).calls
    assert [(c.name, c.arguments) for c in calls] == [
        ("get-weather", {"from": "Paris"}),
        ("get_weather", {"in": "Rome"}),
        ("print", {"json": {"model_name": "m", "copy": 2}}),
    ]


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        ([{"type": "web_search"}], "only function tools"),
        ([{"type": "function", "function": {"description": "no name"}}], "with a name is required"),
        ([function("  ")], "name is empty"),
        ([function("a"), function("a")], "repeats"),
        (
            [function("a", {"type": "object", "properties": {"x": {"type": "strng"}}})],
            "invalid parameters schema",
        ),
        ([function("a", {"type": "object", "properties": ["x"]})], "must be a JSON Schema object"),
    ],
)
def test_bad_tool_definitions_are_rejected(tools: list[Any], message: str) -> None:
    with pytest.raises(InvalidDefinition, match=message):
        OfferedTools.from_openai(tools)


def test_bare_function_definitions_are_accepted() -> None:
    offered = OfferedTools.from_openai([{"name": "ping"}])
    assert list(offered) == ["ping"]
    assert "def ping() -> Any:\n    ...\n" in render_tools(offered).source


# -- instructions -------------------------------------------------------------------------------


def test_the_system_prompt_holds_the_source_and_the_rules() -> None:
    prompt = system_prompt(WEATHER)
    assert prompt is not None
    assert render_tools(WEATHER).source.rstrip() in prompt
    assert "```python\nget_weather(city='...')\n```" in prompt
    assert "You may call several functions" in prompt
    assert "When no function is needed, answer in plain text" in prompt


def test_tool_choice_and_parallel_calls_shape_the_prompt() -> None:
    assert system_prompt(None) is None
    assert system_prompt(WEATHER, tool_choice="none") == (
        "Do not call any functions in this reply; answer in plain text."
    )
    required = system_prompt(WEATHER, tool_choice="required", parallel_tool_calls=False)
    assert required is not None
    assert "You must call at least one function in this reply." in required
    assert "Call at most one function per reply." in required
    named = system_prompt(
        WEATHER, tool_choice={"type": "function", "function": {"name": "get_forecast"}}
    )
    assert named is not None
    assert "You must call get_forecast in this reply." in named
    assert "def get_weather" not in named


def test_select_tools_follows_tool_choice() -> None:
    assert select_tools(WEATHER, "none") == []
    assert select_tools(WEATHER, "auto") == WEATHER
    assert select_tools(WEATHER, {"type": "function", "name": "get_weather"}) == WEATHER[:1]
    with pytest.raises(InvalidDefinition, match="'nope', which is not among the tools"):
        select_tools(WEATHER, {"type": "function", "function": {"name": "nope"}})


def test_a_description_quoting_markdown_gets_a_longer_fence() -> None:
    prompt = system_prompt([function("x", description="Use ```bash blocks")])
    assert prompt is not None
    assert "````python\nfrom typing" in prompt


def test_call_source_is_literal_python() -> None:
    tool = OfferedTools.from_openai(TOOL_SETS["misc"]).lookup("convert-currency")
    source = call_source("convert-currency", {"amount": 1, "from": "EUR", "to": "USD"}, tool)
    assert source == "convert_currency(amount=1, from_='EUR', to='USD')"
    odd = call_source("x-y", {"a b": True, "c": None, "d": [1, {"e": False}]})
    assert odd == "x_y(c=None, d=[1, {'e': False}], **{'a b': True})"


# -- folding ------------------------------------------------------------------------------------

CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": '{"city": "Rome", "unit": "celsius"}',
                },
            },
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
    {
        "role": "tool",
        "tool_call_id": "call_2",
        "content": [{"type": "text", "text": "24 C, sunny"}],
    },
    {"role": "assistant", "content": "Paris is 21 °C; Rome 24 °C and sunny."},
    {"role": "user", "content": "And tomorrow in Rome?"},
]


def test_a_conversation_folds_into_plain_turns() -> None:
    folded = fold_messages(CONVERSATION, WEATHER)
    assert [m["role"] for m in folded] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert folded[0]["content"] == "You are a helpful assistant.\n\n" + system_prompt(WEATHER)
    assert folded[2]["content"] == (
        "```python\nget_weather(city='Paris')\nget_weather(city='Rome', unit='celsius')\n```"
    )
    assert folded[3]["content"] == (
        "Result of get_weather(city='Paris') [call_1]:\n"
        '{"temp": 21}\n\n'
        "Result of get_weather(city='Rome', unit='celsius') [call_2]:\n"
        "24 C, sunny\n\n"
        "Use these results to answer, or call more functions if needed."
    )
    assert folded[5] == {"role": "user", "content": "And tomorrow in Rome?"}


def test_folded_calls_parse_back_to_the_same_calls() -> None:
    assistant = fold_messages(CONVERSATION, WEATHER)[2]["content"]
    calls = parse_reply(assistant, WEATHER).calls
    original = CONVERSATION[2]["tool_calls"]
    assert [(c.name, c.arguments) for c in calls] == [
        (t["function"]["name"], json.loads(t["function"]["arguments"])) for t in original
    ]


def test_folding_edge_cases() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look"},
                {"type": "image_url", "image_url": {"url": "data:,"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "c9",
                    "type": "function",
                    "function": {"name": "gone-tool", "arguments": "{not json"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c9", "content": None},
        {"role": "tool", "tool_call_id": "unknown", "name": "legacy", "content": "ok"},
        {"role": "user", "content": "Thanks"},
    ]
    folded = fold_messages(messages, WEATHER, tool_choice="required")
    assert folded[0]["role"] == "system"
    assert folded[0]["content"].startswith("Be brief.\n\nYou can call")
    assert folded[1]["content"][1]["type"] == "image_url"  # multimodal parts kept
    assert (
        folded[2]["content"] == "Checking.\n\n```python\ngone_tool()  # arguments not readable\n```"
    )
    assert folded[3] == {
        "role": "user",
        "content": "Result of gone_tool()  # arguments not readable [c9]:\n\n\n"
        "Result of legacy [unknown]:\nok\n\n"
        "Use these results to answer, or call more functions if needed.\n\nThanks",
    }
    assert len(folded) == 4


def test_without_a_system_message_one_is_added() -> None:
    folded = fold_messages([{"role": "user", "content": "hi"}], WEATHER)
    assert folded[0] == {"role": "system", "content": system_prompt(WEATHER)}
    assert fold_messages([{"role": "user", "content": "hi"}]) == [{"role": "user", "content": "hi"}]
