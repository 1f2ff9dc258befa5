"""Streaming through the gateway, read by the official client's own accumulator and as raw
server-sent events: emulated turns, native pass-through with a buggy upstream, usage chunks,
the auto fallback and errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState

from tests.gateway_helpers import (
    PLAIN,
    PROSE_AND_FENCE,
    THINK_PARALLEL,
    TOOLS,
    USER,
    Served,
    chunk,
    served_gateway,
    sse_reply,
    text_reply,
)
from tests.llm_server import error

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_gateway(tmp_path_factory.mktemp("gateway-stream")) as served:
        yield served


@pytest.fixture
def client(gw: Served) -> Iterator[openai.OpenAI]:
    with gw.openai_client() as made:
        yield made


def raw_events(gw: Served, body: dict[str, Any]) -> list[str]:
    """The ``data:`` payloads of a streamed answer, as sent."""
    with httpx.stream("POST", f"{gw.v1}/chat/completions", json=body, timeout=30) as answer:
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"].startswith("text/event-stream")
        text = answer.read().decode()
    events = text.split("\n\n")
    assert events[-1] == ""
    assert all(e.startswith("data: ") for e in events[:-1])
    return [e[len("data: ") :] for e in events[:-1]]


def accumulate(stream: Any) -> Any:
    """What the openai client makes of a stream (its own accumulator)."""
    state = ChatCompletionStreamState()
    for item in stream:
        state.handle_chunk(item)
    return state.get_final_completion()


def test_an_emulated_turn_streams_as_openai_does(gw: Served) -> None:
    gw.llm.requests.clear()
    gw.llm.script(text_reply(THINK_PARALLEL))
    events = raw_events(gw, {"model": "emu", "messages": USER, "tools": TOOLS, "stream": True})
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "emu" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    firsts = [tc for tc in calls if "id" in tc]
    assert [tc["index"] for tc in firsts] == [0, 1]
    for first in firsts:
        assert first["type"] == "function" and first["function"]["arguments"] == ""
        assert first["function"]["name"] == "get_weather" and first["id"].startswith("call_")
    for rest in (tc for tc in calls if "id" not in tc):
        assert set(rest) == {"index", "function"} and set(rest["function"]) == {"arguments"}
    finals = [c for c in chunks if c["choices"][0]["finish_reason"]]
    assert len(finals) == 1 and finals[0] is chunks[-1]
    assert finals[0]["choices"][0]["finish_reason"] == "tool_calls"
    reasoning = [c["choices"][0]["delta"].get("reasoning_content") for c in chunks]
    assert any(r and "two cities" in r for r in reasoning)


def test_the_client_accumulates_the_same_calls_as_without_streaming(
    gw: Served, client: openai.OpenAI
) -> None:
    gw.llm.script(text_reply(THINK_PARALLEL), text_reply(THINK_PARALLEL))
    whole = client.chat.completions.create(model="emu", messages=USER, tools=TOOLS)
    streamed = accumulate(
        client.chat.completions.create(model="emu", messages=USER, tools=TOOLS, stream=True)
    )

    def calls(reply: Any) -> list[tuple[str, dict[str, Any]]]:
        entries = reply.choices[0].message.tool_calls or []
        return [(c.function.name, json.loads(c.function.arguments)) for c in entries]

    assert calls(streamed) == calls(whole) and len(calls(whole)) == 2
    assert streamed.choices[0].finish_reason == "tool_calls"


def test_the_stream_helper_of_the_client(gw: Served, client: openai.OpenAI) -> None:
    gw.llm.script(text_reply(PROSE_AND_FENCE))
    with client.chat.completions.stream(model="emu", messages=USER, tools=TOOLS) as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_completion()
    assert {"content.delta", "tool_calls.function.arguments.done"} <= kinds
    message = final.choices[0].message
    assert message.content == "I'll look up the current weather in Paris for you."
    (call,) = message.tool_calls or []
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}


def test_usage_comes_last_when_asked_for(gw: Served) -> None:
    gw.llm.requests.clear()
    gw.llm.script(text_reply(PLAIN))
    body = {"model": "emu", "messages": USER, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    chunks = [json.loads(e) for e in raw_events(gw, body)[:-1]]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert all(c["usage"] is None for c in chunks[:-1])
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
    assert text == PLAIN


def test_native_streams_pass_through_and_are_reindexed(gw: Served, client: openai.OpenAI) -> None:
    """An upstream that puts parallel calls all at index 0, streams arguments as fragments
    and ends with finish_reason "stop"; and sends no [DONE]."""
    gw.llm.script(
        sse_reply(
            chunk({"role": "assistant", "content": None}),
            chunk({"tool_calls": [{"index": 0, "id": "a", "type": "function",
                                   "function": {"name": "get_weather", "arguments": ""}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
            chunk({"tool_calls": [{"index": 0, "id": "b", "type": "function",
                                   "function": {"name": "search_web",
                                                "arguments": {"query": "news"}}}]}),
            chunk({}, "stop"),
            done=False,
        )
    )  # fmt: skip
    final = accumulate(
        client.chat.completions.create(model="nat", messages=USER, tools=TOOLS, stream=True)
    )
    calls = final.choices[0].message.tool_calls
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("a", "get_weather", {"city": "Paris"}),
        ("b", "search_web", {"query": "news"}),
    ]
    assert final.choices[0].finish_reason == "tool_calls"
    sent = gw.sent()
    assert sent["stream"] is True and sent["tools"] == TOOLS


def test_native_content_streams_as_it_comes(gw: Served, client: openai.OpenAI) -> None:
    gw.llm.script(
        sse_reply(
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({}, "stop"),
            chunk({}, None, usage=None),
        )
    )
    pieces = [
        c.choices[0].delta.content
        for c in client.chat.completions.create(model="nat", messages=USER, stream=True)
        if c.choices and c.choices[0].delta.content
    ]
    assert pieces == ["Hel", "lo"]


def test_auto_streaming_falls_back_to_emulation(gw: Served, client: openai.OpenAI) -> None:
    gw.llm.script(error(400, "this model does not support tools"), text_reply(PROSE_AND_FENCE))
    final = accumulate(
        client.chat.completions.create(model="auto", messages=USER, tools=TOOLS, stream=True)
    )
    (call,) = final.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    first, second = (r.json() for r in gw.llm.requests)
    assert first["stream"] is True and "tools" in first
    assert "tools" not in second and "stream" not in second


def test_errors_before_the_stream_are_plain_http_errors(gw: Served, client: openai.OpenAI) -> None:
    gw.llm.script(error(500, "boom"))
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="nat", messages=USER, stream=True)
    assert raised.value.status_code == 502
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="emu", messages=USER, stream=False, stream_options={"include_usage": True}
        )


def test_streamed_requests_are_logged_with_what_was_sent(gw: Served) -> None:
    gw.llm.requests.clear()
    gw.llm.script(text_reply(PROSE_AND_FENCE))
    events = raw_events(gw, {"model": "emu", "messages": USER, "tools": TOOLS, "stream": True})
    request_id = json.loads(events[0])["id"]
    entry = httpx.get(f"{gw.v1}/logs/{request_id}").json()
    assert entry["stream"] is True and entry["status"] == 200 and entry["mode"] == "emulate"
    assert entry["response"]["turn"]["tool_calls"][0]["function"]["name"] == "get_weather"
