"""The gateway driven by the official ``openai`` client (sync and async), against a scripted
upstream replaying realistic model replies: emulated tool calls, tool_choice, repairs,
multi-turn folding, native and auto modes, and OpenAI's error shapes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway_helpers import (
    BAD_ARGUMENT,
    FIXED,
    HERMES,
    JSON_LIKE,
    PLAIN,
    PROSE_AND_FENCE,
    THINK_PARALLEL,
    TOOLS,
    USER,
    Served,
    served_gateway,
    text_reply,
)
from tests.llm_server import Reply, completion, error, tool_call

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_gateway(tmp_path_factory.mktemp("gateway")) as served:
        yield served


@pytest.fixture
def client(gw: Served) -> Iterator[openai.OpenAI]:
    with gw.openai_client() as made:
        yield made


def arguments(call: Any) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(call.function.arguments)
    return parsed


def test_a_call_in_prose_and_a_fence_comes_back_as_tool_calls(
    gw: Served, client: openai.OpenAI
) -> None:
    gw.llm.script(text_reply(PROSE_AND_FENCE))
    reply = client.chat.completions.create(model="emu", messages=USER, tools=TOOLS)
    assert reply.id.startswith("chatcmpl-") and len(reply.id) == 38
    assert reply.object == "chat.completion" and isinstance(reply.created, int)
    assert reply.model == "emu"
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "I'll look up the current weather in Paris for you."
    (call,) = choice.message.tool_calls or []
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "get_weather"
    assert arguments(call) == {"city": "Paris", "unit": "celsius"}
    assert reply.usage is not None and reply.usage.total_tokens == 15
    sent = gw.sent()
    assert sent["model"] == "m-emu" and "tools" not in sent and "tool_choice" not in sent
    system = sent["messages"][0]
    assert system["role"] == "system" and "def get_weather(" in system["content"]
    assert "class " not in system["content"] or "BaseModel" in system["content"]


def test_reasoning_is_split_off_and_parallel_calls_get_their_own_ids(
    gw: Served, client: openai.OpenAI
) -> None:
    gw.llm.script(text_reply(THINK_PARALLEL))
    reply = client.chat.completions.create(model="emu", messages=USER, tools=TOOLS)
    message = reply.choices[0].message
    calls = message.tool_calls or []
    assert [arguments(c) for c in calls] == [
        {"city": "Paris"},
        {"city": "Tokyo", "unit": "fahrenheit"},
    ]
    assert len({c.id for c in calls}) == 2
    assert message.content is None
    assert "two cities" in (message.model_extra or {})["reasoning_content"]


@pytest.mark.parametrize("reply", [JSON_LIKE, HERMES], ids=["json", "hermes"])
def test_json_shaped_calls_are_read(gw: Served, client: openai.OpenAI, reply: str) -> None:
    gw.llm.script(text_reply(reply))
    made = client.chat.completions.create(model="emu", messages=USER, tools=TOOLS)
    (call,) = made.choices[0].message.tool_calls or []
    assert call.function.name in ("get_weather", "search_web")
    assert arguments(call)


def test_plain_text_is_an_answer(gw: Served, client: openai.OpenAI) -> None:
    gw.llm.script(text_reply(PLAIN))
    reply = client.chat.completions.create(model="emu", messages=USER, tools=TOOLS)
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.content == PLAIN
    assert reply.choices[0].message.tool_calls is None


def test_invalid_arguments_get_one_repair_round(gw: Served, client: openai.OpenAI) -> None:
    gw.llm.script(text_reply(BAD_ARGUMENT), text_reply(FIXED))
    reply = client.chat.completions.create(model="emu", messages=USER, tools=TOOLS)
    (call,) = reply.choices[0].message.tool_calls or []
    assert arguments(call) == {"city": "Paris", "unit": "celsius"}
    repair = gw.sent()["messages"]
    assert repair[-2] == {"role": "assistant", "content": BAD_ARGUMENT}
    assert "kelvin" in repair[-1]["content"] and "could not be used" in repair[-1]["content"]
    assert reply.usage is not None and reply.usage.total_tokens == 30  # both rounds


def test_a_second_bad_reply_is_a_clear_502(gw: Served, client: openai.OpenAI) -> None:
    gw.llm.script(text_reply(BAD_ARGUMENT), text_reply("```python\nlookup_stock('X')\n```"))
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="emu", messages=USER, tools=TOOLS)
    assert raised.value.status_code == 502
    body: Any = raised.value.body
    assert body["code"] == "invalid_tool_call" and "lookup_stock" in body["message"]


def test_unknown_tools_are_rejected_not_returned(gw: Served, client: openai.OpenAI) -> None:
    gw.llm.script(text_reply("```python\ndelete_account(user='bob')\n```"), text_reply(FIXED))
    reply = client.chat.completions.create(model="emu", messages=USER, tools=TOOLS)
    (call,) = reply.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    assert "unknown tool 'delete_account'" in gw.sent()["messages"][-1]["content"]


def test_tool_choice_none_offers_no_tools(gw: Served, client: openai.OpenAI) -> None:
    gw.llm.script(text_reply(PLAIN))
    reply = client.chat.completions.create(
        model="emu", messages=USER, tools=TOOLS, tool_choice="none"
    )
    assert reply.choices[0].message.content == PLAIN
    system = gw.sent()["messages"][0]["content"]
    assert "Do not call any functions" in system and "def get_weather" not in system


def test_tool_choice_required_reprompts_once(gw: Served, client: openai.OpenAI) -> None:
    gw.llm.script(text_reply(PLAIN), text_reply(FIXED))
    reply = client.chat.completions.create(
        model="emu", messages=USER, tools=TOOLS, tool_choice="required"
    )
    assert reply.choices[0].finish_reason == "tool_calls"
    first, second = (r.json()["messages"] for r in gw.llm.requests)
    assert "You must call at least one function" in first[0]["content"]
    assert "You must call at least one of the functions now" in second[-1]["content"]


def test_a_named_tool_choice_offers_that_tool_and_fails_clearly(
    gw: Served, client: openai.OpenAI
) -> None:
    gw.llm.script(text_reply(PLAIN), text_reply("Sorry, I cannot."))
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(
            model="emu",
            messages=USER,
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "search_web"}},
        )
    assert raised.value.status_code == 502
    body: Any = raised.value.body
    assert body["code"] == "tool_call_missing" and "search_web" in body["message"]
    system = gw.sent(0)["messages"][0]["content"]
    assert "def search_web" in system and "def get_weather" not in system
    assert "You must call search_web now" in gw.sent(1)["messages"][-1]["content"]


def test_parallel_tool_calls_false_is_honoured(gw: Served, client: openai.OpenAI) -> None:
    gw.llm.script(text_reply(THINK_PARALLEL), text_reply(FIXED))
    reply = client.chat.completions.create(
        model="emu", messages=USER, tools=TOOLS, parallel_tool_calls=False
    )
    assert len(reply.choices[0].message.tool_calls or []) == 1
    assert "Call at most one function" in gw.sent(0)["messages"][0]["content"]
    assert "parallel tool calls are disabled" in gw.sent(1)["messages"][-1]["content"]


def test_tool_results_are_folded_back_for_the_next_turn(gw: Served, client: openai.OpenAI) -> None:
    gw.llm.script(text_reply(PLAIN))
    history: list[Any] = [
        *USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc", "content": '{"temperature": 21}'},
    ]
    reply = client.chat.completions.create(model="emu", messages=history, tools=TOOLS)
    assert reply.choices[0].message.content == PLAIN
    sent = gw.sent()["messages"]
    assert {m["role"] for m in sent} <= {"system", "user", "assistant"}
    assert "get_weather(city='Paris')" in sent[2]["content"]
    assert (
        "Result of get_weather(city='Paris') [call_abc]:\n{\"temperature\": 21}"
        in (sent[3]["content"])
    )


def test_async_client(gw: Served) -> None:
    import asyncio

    gw.llm.requests.clear()
    gw.llm.script(text_reply(PROSE_AND_FENCE))

    async def main() -> Any:
        async with openai.AsyncOpenAI(base_url=gw.v1, api_key="x", max_retries=0) as client:
            return await client.chat.completions.create(model="emu", messages=USER, tools=TOOLS)

    reply = asyncio.run(main())
    (call,) = reply.choices[0].message.tool_calls or []
    assert arguments(call)["city"] == "Paris"


def test_native_mode_passes_tools_through_and_fixes_the_answer(
    gw: Served, client: openai.OpenAI
) -> None:
    sloppy = completion(tool_calls=[tool_call("get_weather", "{}", id="")], finish_reason="stop")
    sloppy["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = {"city": "Rome"}
    del sloppy["choices"][0]["message"]["tool_calls"][0]["type"]
    gw.llm.script(Reply(json=sloppy))
    reply = client.chat.completions.create(
        model="nat", messages=USER, tools=TOOLS, tool_choice="auto", temperature=0.2
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.id.startswith("call_") and call.type == "function"
    assert json.loads(call.function.arguments) == {"city": "Rome"}
    sent = gw.sent()
    assert sent["tools"] == TOOLS and sent["tool_choice"] == "auto"
    assert sent["model"] == "m-nat" and sent["temperature"] == 0.2


def test_auto_mode_falls_back_to_emulation_once_and_remembers(
    gw: Served, client: openai.OpenAI
) -> None:
    refusal = error(400, "tools is not supported for this model")
    gw.llm.script(refusal, text_reply(FIXED), text_reply(FIXED))
    for _ in range(2):
        reply = client.chat.completions.create(model="auto", messages=USER, tools=TOOLS)
        assert reply.choices[0].finish_reason == "tool_calls"
    first, second, third = (r.json() for r in gw.llm.requests)
    assert "tools" in first and "tools" not in second and "tools" not in third
    assert "def get_weather" in third["messages"][0]["content"]


def test_auto_mode_stays_native_when_the_upstream_takes_tools(
    gw: Served, client: openai.OpenAI
) -> None:
    native = completion(tool_calls=[tool_call("get_weather", {"city": "Oslo"})])
    gw.llm.script(Reply(json=native), Reply(json=native))
    for _ in range(2):
        reply = client.chat.completions.create(model="auto2", messages=USER, tools=TOOLS)
        assert reply.choices[0].message.tool_calls
    assert all("tools" in r.json() for r in gw.llm.requests)


def test_models_are_listed(gw: Served, client: openai.OpenAI) -> None:
    names = [m.id for m in client.models.list()]
    assert names == ["emu", "nat", "auto", "auto2"]
    assert client.models.retrieve("nat").id == "nat"


def test_upstream_failures_are_502(gw: Served, client: openai.OpenAI) -> None:
    gw.llm.script(error(503, "loading"))
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="emu", messages=USER)
    assert raised.value.status_code == 502


BAD_REQUESTS: list[tuple[Any, int, str | None]] = [
    (b"{not json", 400, None),
    ([1, 2], 400, None),
    ({"messages": USER}, 400, "model"),
    ({"model": "emu"}, 400, "messages"),
    ({"model": "emu", "messages": []}, 400, "messages"),
    ({"model": "emu", "messages": [{"role": "robot", "content": "x"}]}, 400, "messages[0].role"),
    ({"model": "emu", "messages": [{"role": "user", "content": 5}]}, 400, "messages[0].content"),
    ({"model": "emu", "messages": [{"role": "tool", "content": "x"}]}, 400, None),
    ({"model": "emu", "messages": USER, "n": 2}, 400, "n"),
    ({"model": "emu", "messages": USER, "temperature": 9}, 400, "temperature"),
    ({"model": "emu", "messages": USER, "tools": [{"type": "function"}]}, 400, None),
    ({"model": "emu", "messages": USER, "tool_choice": "required"}, 400, "tool_choice"),
    (
        {
            "model": "emu",
            "messages": USER,
            "tools": TOOLS,
            "tool_choice": {"type": "function", "function": {"name": "nope"}},
        },
        400,
        "tool_choice",
    ),
    ({"model": "gpt-9", "messages": USER}, 404, "model"),
    (
        {
            "model": "emu",
            "messages": USER,
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "x", "parameters": {"type": "object", "properties": 3}},
                }
            ],
        },
        400,
        None,
    ),
]


@pytest.mark.parametrize(("body", "status", "param"), BAD_REQUESTS)
def test_bad_requests_answer_openai_error_shapes(
    gw: Served, body: Any, status: int, param: str | None
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = httpx.post(
        f"{gw.v1}/chat/completions",
        content=content,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == status, answer.text
    error_body = answer.json()["error"]
    assert set(error_body) == {"message", "type", "param", "code"}
    assert error_body["type"] == "invalid_request_error" and error_body["message"]
    if param is not None:
        assert error_body["param"] == param


def test_the_openai_client_raises_typed_errors(gw: Served, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=USER)
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="emu", messages=USER, n=3)


def test_toolrun_routes_keep_their_own_error_shape(gw: Served, tmp_path: Path) -> None:
    answer = httpx.get(f"{gw.url}/tool/no-such-tool")
    assert answer.status_code == 404 and answer.json()["error"]["type"] == "tool_not_found"


def test_code_that_loops_over_calls_is_run_with_recording_stubs(
    gw: Served, client: openai.OpenAI
) -> None:
    from tests.conftest import require_sandbox

    require_sandbox()
    loop = (
        "I'll check both cities.\n\n```python\nfor city in ['Paris', 'Tokyo']:\n"
        "    if city == 'Tokyo':\n        get_weather(city, unit='fahrenheit')\n"
        "    else:\n        get_weather(city=city)\n```"
    )
    gw.llm.script(text_reply(loop))
    reply = client.chat.completions.create(model="emu", messages=USER, tools=TOOLS)
    calls = reply.choices[0].message.tool_calls or []
    assert [arguments(c) for c in calls] == [
        {"city": "Paris"},
        {"city": "Tokyo", "unit": "fahrenheit"},
    ]
    assert reply.choices[0].message.content == "I'll check both cities."
    assert len(gw.llm.requests) == 1  # no repair round was needed


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)  # JSON has neither
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = st.sampled_from(
    ["model", "messages", "tools", "tool_choice", "parallel_tool_calls", "stream", "n",
     "temperature", "stream_options", "toolrun_tools", "max_tokens", "stop"]
)  # fmt: skip


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(changes=st.dictionaries(FIELDS, JSON, max_size=3), drop=st.lists(FIELDS, max_size=2))
def test_mangled_requests_never_get_a_500(
    gw: Served, changes: dict[str, Any], drop: list[str]
) -> None:
    body: dict[str, Any] = {"model": "emu", "messages": USER, "tools": TOOLS, **changes}
    for field in drop:
        body.pop(field, None)
    answer = httpx.post(f"{gw.v1}/chat/completions", json=body, timeout=30)
    assert answer.status_code < 500 or answer.status_code == 502, answer.text
    if answer.status_code >= 400:
        assert set(answer.json()["error"]) == {"message", "type", "param", "code"}


def test_native_mode_honours_tool_choice_where_servers_do_not(
    gw: Served, client: openai.OpenAI
) -> None:
    calling = Reply(json=completion(tool_calls=[tool_call("get_weather", {"city": "Oslo"})]))
    gw.llm.script(calling, Reply(json=completion(PLAIN)), calling)
    ignored = client.chat.completions.create(
        model="nat", messages=USER, tools=TOOLS, tool_choice="none"
    )
    assert ignored.choices[0].message.tool_calls is None
    assert ignored.choices[0].finish_reason == "stop"
    forced = client.chat.completions.create(
        model="nat", messages=USER, tools=TOOLS, tool_choice="required"
    )
    assert forced.choices[0].message.tool_calls
    assert gw.sent(2)["messages"][-1]["content"].startswith("You must call")
