"""Server-side tools: ``toolrun_tools`` (``extra_body`` in the official client) run through the
executor as jobs while the gateway loops with the model; the trace comes back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.gateway_helpers import TOOLS, USER, Served, served_gateway, text_reply
from tests.llm_server import Reply, completion, tool_call

pytestmark = pytest.mark.e2e
DELHI = [{"role": "user", "content": "How warm is it in Delhi?"}]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("gateway-tools")
    with served_gateway(tmp, demo=True, gateway_max_steps=2) as served:
        yield served


@pytest.fixture
def client(gw: Served) -> Iterator[openai.OpenAI]:
    with gw.openai_client() as made:
        yield made


def trace_of(reply: Any) -> list[dict[str, Any]]:
    trace: list[dict[str, Any]] = (reply.model_extra or {})["toolrun_trace"]
    return trace


def test_registry_tools_run_as_jobs_until_the_model_answers(
    gw: Served, client: openai.OpenAI
) -> None:
    gw.llm.script(
        text_reply('Let me check.\n```python\nweather_lookup(city="Delhi")\n```'),
        text_reply("It is 28 degrees Celsius in Delhi."),
    )
    reply = client.chat.completions.create(
        model="emu", messages=DELHI, extra_body={"toolrun_tools": ["weather_lookup"]}
    )
    assert reply.choices[0].message.content == "It is 28 degrees Celsius in Delhi."
    assert reply.choices[0].finish_reason == "stop"
    (step,) = trace_of(reply)
    assert step["tool"] == "weather_lookup" and step["tool_id"] == "weather_lookup:v1.0.0-stable"
    assert step["arguments"] == {"city": "Delhi"} and step["status"] == "succeeded"
    assert step["result"]["structuredContent"] == {"temperature": 28, "unit": "C"}
    job = httpx.get(f"{gw.url}/jobs/{step['job_id']}").json()
    assert job["status"] == "succeeded"
    assert "def weather_lookup(" in gw.sent(0)["messages"][0]["content"]
    result = gw.sent(1)["messages"][-1]
    assert (
        result["role"] == "user" and "Result of weather_lookup(city='Delhi')" in (result["content"])
    )
    assert reply.usage is not None and reply.usage.total_tokens == 30


def test_client_calls_go_back_to_the_client_after_the_server_ones_ran(
    gw: Served, client: openai.OpenAI
) -> None:
    both = '```python\nweather_lookup(city="Delhi")\nget_weather(city="Paris")\n```'
    gw.llm.script(text_reply(both))
    reply = client.chat.completions.create(
        model="emu", messages=USER, tools=TOOLS, extra_body={"toolrun_tools": ["weather_lookup"]}
    )
    (call,) = reply.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    assert reply.choices[0].finish_reason == "tool_calls"
    assert [t["tool"] for t in trace_of(reply)] == ["weather_lookup"]


def test_native_upstreams_loop_too_and_failures_are_told_to_the_model(
    gw: Served, client: openai.OpenAI
) -> None:
    wrong = completion(tool_calls=[tool_call("weather_lookup", {"town": "Delhi"}, id="c1")])
    gw.llm.script(Reply(json=wrong), Reply(json=completion("I could not look it up.")))
    reply = client.chat.completions.create(
        model="nat", messages=DELHI, extra_body={"toolrun_tools": ["weather_lookup"]}
    )
    (step,) = trace_of(reply)
    assert step["status"] == "rejected" and step["is_error"] and step["job_id"] is None
    told = gw.sent(1)["messages"][-1]
    assert told["role"] == "tool" and told["tool_call_id"] == "c1"
    assert told["content"].startswith("Error: ")
    assert gw.sent(0)["tools"][0]["function"]["name"] == "weather_lookup"


def test_the_loop_is_bounded(gw: Served, client: openai.OpenAI) -> None:
    again = text_reply('```python\nweather_lookup(city="Delhi")\n```')
    gw.llm.script(again, again, text_reply("Enough."))
    reply = client.chat.completions.create(
        model="emu", messages=DELHI, extra_body={"toolrun_tools": ["weather_lookup"]}
    )
    assert reply.choices[0].message.content == "Enough."
    assert [t["step"] for t in trace_of(reply)] == [1, 2]
    assert "Do not call any functions" in gw.sent(2)["messages"][0]["content"]


def test_the_trace_rides_on_the_last_chunk_of_a_stream(gw: Served) -> None:
    gw.llm.requests.clear()
    gw.llm.script(
        text_reply('```python\nweather_lookup(city="Delhi")\n```'), text_reply("28 degrees.")
    )
    body = {"model": "emu", "messages": DELHI, "stream": True, "toolrun_tools": ["weather_lookup"]}
    with httpx.stream("POST", f"{gw.v1}/chat/completions", json=body, timeout=30) as answer:
        events = [e[6:] for e in answer.read().decode().split("\n\n") if e]
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["toolrun_trace"][0]["status"] == "succeeded"


def test_unknown_registry_tools_are_a_400(gw: Served, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="emu", messages=DELHI, extra_body={"toolrun_tools": ["no_such_tool"]}
        )
    assert raised.value.param == "toolrun_tools"
