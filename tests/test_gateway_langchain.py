"""LangChain's ``ChatOpenAI(...).bind_tools(...)`` against the gateway, unchanged: tool calls
with parsed arguments (invoke and stream), and a second turn with the tool's result."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("langchain_openai")

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from tests.gateway_helpers import (
    PLAIN,
    THINK_PARALLEL,
    Served,
    served_gateway,
    text_reply,
)

pytestmark = pytest.mark.e2e


@tool
def get_weather(city: str, unit: str = "celsius") -> str:
    """Current weather of a city."""
    return f"21 degrees {unit} in {city}"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_gateway(tmp_path_factory.mktemp("gateway-langchain")) as served:
        yield served


def chat(gw: Served, **options: Any) -> ChatOpenAI:
    return ChatOpenAI(model="emu", base_url=gw.v1, api_key="unused", max_retries=0, **options)  # type: ignore[arg-type]


def test_bind_tools_invoke_gives_parsed_tool_calls(gw: Served) -> None:
    gw.llm.script(text_reply(THINK_PARALLEL))
    message = chat(gw).bind_tools([get_weather]).invoke("Weather in Paris and Tokyo?")
    assert isinstance(message, AIMessage)
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Tokyo", "unit": "fahrenheit"}),
    ]
    assert all(c["id"] and c["id"].startswith("call_") for c in message.tool_calls)
    sent = gw.sent()
    assert "def get_weather(city: str, unit: str = 'celsius')" in sent["messages"][0]["content"]


def test_streaming_chunks_add_up_to_the_same_calls(gw: Served) -> None:
    gw.llm.script(text_reply(THINK_PARALLEL))
    total: Any = None
    for piece in chat(gw, streaming=True).bind_tools([get_weather]).stream("Paris and Tokyo?"):
        total = piece if total is None else total + piece
    assert [c["args"] for c in total.tool_calls] == [
        {"city": "Paris"},
        {"city": "Tokyo", "unit": "fahrenheit"},
    ]


def test_a_second_turn_with_the_tool_result(gw: Served) -> None:
    gw.llm.script(text_reply('```python\nget_weather(city="Paris")\n```'), text_reply(PLAIN))
    model = chat(gw).bind_tools([get_weather], tool_choice="required")
    history: list[Any] = [HumanMessage("Weather in Paris?")]
    first = model.invoke(history)
    assert isinstance(first, AIMessage)
    (call,) = first.tool_calls
    history += [first, ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])]
    second = chat(gw).bind_tools([get_weather]).invoke(history)
    assert second.content == PLAIN and not second.tool_calls
    folded = gw.sent()["messages"]
    assert "21 degrees celsius in Paris" in folded[-1]["content"]
