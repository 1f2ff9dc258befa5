"""The OpenAI-compatible LLM client against a scripted server on loopback: retries, their
limits, typed errors, what goes on the wire."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.llm_server import Reply, ScriptedLLMServer, calls, completion, error, says
from tests.servers import free_port
from toolrun.llm import (
    AssistantMessage,
    LLMBadResponse,
    LLMClient,
    LLMRejected,
    LLMUnavailable,
    RetryPolicy,
    ToolCall,
)
from toolrun.llm.client import parse_retry_after
from toolrun.llm.wire import parse_completion, upstream_message

pytestmark = pytest.mark.anyio
WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Current weather of a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def llm() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as server:
        yield server


class Sleeps:
    """Stands in for asyncio.sleep: records each wait the client asks for, waits for none."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def client_for(
    server: ScriptedLLMServer, sleeps: Sleeps | None = None, **options: Any
) -> LLMClient:
    return LLMClient(server.url, "test-model", sleep=sleeps or Sleeps(), **options)


async def test_a_chat_turn_sends_the_openai_body_and_reads_the_call(
    llm: ScriptedLLMServer,
) -> None:
    llm.script(calls("weather", {"city": "Paris"}))
    async with client_for(llm, api_key="sk-secret") as client:
        messages = [{"role": "user", "content": "weather in Paris?"}]
        reply = await client.chat(messages, tools=[WEATHER], tool_choice="auto", temperature=0)
    assert reply.tool_calls == (ToolCall("weather", '{"city": "Paris"}', "call_1"),)
    assert reply.tool_calls[0].parsed_arguments() == {"city": "Paris"}
    [request] = llm.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-secret"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "model": "test-model",
        "messages": messages,
        "tools": [WEATHER],
        "tool_choice": "auto",
        "temperature": 0,
    }
    assert "sk-secret" not in repr(client)


async def test_no_key_no_authorization_header(llm: ScriptedLLMServer) -> None:
    llm.script(says("hello"))
    async with client_for(llm) as client:
        reply = await client.chat([{"role": "user", "content": "hi"}])
    assert reply.content == "hello" and reply.tool_calls == ()
    assert "authorization" not in llm.requests[0].headers
    assert "tools" not in llm.requests[0].json()


async def test_a_503_is_retried_then_succeeds(llm: ScriptedLLMServer) -> None:
    sleeps = Sleeps()
    llm.script(error(503, "loading model"), error(502, "bad gateway"), says("ready"))
    async with client_for(llm, sleeps, retry=RetryPolicy(max_retries=2, backoff_s=0.5)) as client:
        reply = await client.chat([{"role": "user", "content": "hi"}])
    assert reply.content == "ready"
    assert len(llm.requests) == 3
    # exponential backoff with jitter: half fixed, half random, doubling
    assert len(sleeps.delays) == 2
    assert 0.25 <= sleeps.delays[0] <= 0.5 and 0.5 <= sleeps.delays[1] <= 1.0


@pytest.mark.parametrize("status", [408, 409, 429, 500, 504])
async def test_retryable_statuses(llm: ScriptedLLMServer, status: int) -> None:
    llm.script(error(status, "try again"), says("ok"))
    async with client_for(llm) as client:
        assert (await client.chat([{"role": "user", "content": "x"}])).content == "ok"
    assert len(llm.requests) == 2


async def test_retry_after_is_honoured(llm: ScriptedLLMServer) -> None:
    sleeps = Sleeps()
    llm.script(error(429, "rate limited", headers={"Retry-After": "3"}), says("ok"))
    async with client_for(llm, sleeps) as client:
        assert (await client.chat([{"role": "user", "content": "x"}])).content == "ok"
    assert len(llm.requests) == 2
    assert sleeps.delays == [3.0]


async def test_a_retry_after_beyond_the_cap_ends_the_retries(llm: ScriptedLLMServer) -> None:
    sleeps = Sleeps()
    llm.script(error(503, "maintenance", headers={"Retry-After": "3600"}), says("never"))
    async with client_for(llm, sleeps, retry=RetryPolicy(retry_after_max_s=30)) as client:
        with pytest.raises(LLMUnavailable) as caught:
            await client.chat([{"role": "user", "content": "x"}])
    assert len(llm.requests) == 1 and sleeps.delays == []
    assert "3600s" in caught.value.message and "maintenance" in caught.value.message
    assert caught.value.status == 503


def test_retry_after_as_an_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after("-5") == 0.0


@pytest.mark.parametrize(
    ("status", "hint"),
    [(400, ""), (401, "API key"), (403, "API key"), (404, "base URL"), (422, "")],
)
async def test_client_errors_are_not_retried(
    llm: ScriptedLLMServer, status: int, hint: str
) -> None:
    sleeps = Sleeps()
    llm.script(error(status, "model 'nope' not found"), says("never"))
    async with client_for(llm, sleeps, api_key="sk-secret") as client:
        with pytest.raises(LLMRejected) as caught:
            await client.chat([{"role": "user", "content": "x"}])
    assert len(llm.requests) == 1 and sleeps.delays == []
    assert caught.value.status == status
    assert caught.value.upstream_message == "model 'nope' not found"
    assert f"HTTP {status}" in caught.value.message and hint in caught.value.message
    assert llm.url in caught.value.message and "sk-secret" not in caught.value.message


async def test_retries_run_out_on_5xx(llm: ScriptedLLMServer) -> None:
    sleeps = Sleeps()
    llm.script(*[error(500, "out of memory")] * 3)
    async with client_for(llm, sleeps, max_retries=2) as client:
        with pytest.raises(LLMUnavailable) as caught:
            await client.chat([{"role": "user", "content": "x"}])
    assert len(llm.requests) == 3 and len(sleeps.delays) == 2
    assert "after 3 attempts" in caught.value.message
    assert "HTTP 500: out of memory" in caught.value.message


async def test_a_timeout_is_retried_then_unavailable(llm: ScriptedLLMServer) -> None:
    llm.script(
        Reply(json=completion("late"), delay_s=30), Reply(json=completion("late"), delay_s=30)
    )
    async with client_for(llm, timeout_s=0.2, max_retries=1) as client:
        with pytest.raises(LLMUnavailable) as caught:
            await client.chat([{"role": "user", "content": "x"}])
    assert len(llm.requests) == 2
    assert "no answer within 0.2s" in caught.value.message
    assert "ReadTimeout" in caught.value.message


async def test_a_dropped_connection_is_retried(llm: ScriptedLLMServer) -> None:
    llm.script(Reply(drop=True), says("second time lucky"))
    async with client_for(llm) as client:
        assert (await client.chat([{"role": "user", "content": "x"}])).content == (
            "second time lucky"
        )
    assert len(llm.requests) == 2


async def test_nobody_listening_is_unavailable() -> None:
    sleeps = Sleeps()
    url = f"http://127.0.0.1:{free_port()}/v1"
    async with LLMClient(url, "m", max_retries=1, sleep=sleeps) as client:
        with pytest.raises(LLMUnavailable) as caught:
            await client.chat([{"role": "user", "content": "x"}])
    assert "cannot reach it (ConnectError" in caught.value.message
    assert url in caught.value.message and len(sleeps.delays) == 1


async def test_a_body_that_is_not_json_is_a_bad_response(llm: ScriptedLLMServer) -> None:
    llm.script(Reply(text="<html>proxy login</html>", headers={"Content-Type": "text/html"}))
    async with client_for(llm) as client:
        with pytest.raises(LLMBadResponse) as caught:
            await client.chat([{"role": "user", "content": "x"}])
    assert len(llm.requests) == 1
    assert "not JSON (text/html)" in caught.value.message
    assert "proxy login" in caught.value.message


async def test_json_that_is_not_a_completion_is_a_bad_response(llm: ScriptedLLMServer) -> None:
    llm.script(Reply(json={"object": "list", "data": []}))
    async with client_for(llm) as client:
        with pytest.raises(LLMBadResponse, match="not a chat completion: no 'choices'"):
            await client.chat([{"role": "user", "content": "x"}])


async def test_an_unsupported_url_is_explained() -> None:
    async with LLMClient("ftp://example.invalid/v1", "m") as client:
        with pytest.raises(LLMUnavailable, match="check the base URL"):
            await client.chat([{"role": "user", "content": "x"}])


def test_completion_parsing_variants() -> None:
    parts = {"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"text": "b"}]}}]}
    assert parse_completion(parts).content == "ab"
    as_object = {
        "choices": [
            {"message": {"tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]}}
        ]
    }
    [call] = parse_completion(as_object).tool_calls
    assert call.parsed_arguments() == {"x": 1} and call.id is None
    legacy = {"choices": [{"message": {"function_call": {"name": "g", "arguments": "{}"}}}]}
    assert parse_completion(legacy).tool_calls == (ToolCall("g", "{}"),)
    bad: Any
    for bad in (
        [],
        {"choices": []},
        {"choices": [{}]},
        {"choices": [{"message": {"tool_calls": [{}]}}]},
    ):
        with pytest.raises(ValueError):
            parse_completion(bad)
    message = AssistantMessage.calling("f", {"x": 1}).to_message()
    assert message["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"x": 1}'}


def test_upstream_messages_of_common_servers() -> None:
    assert upstream_message('{"error": {"message": "bad key"}}') == "bad key"  # OpenAI
    assert upstream_message('{"error": "model does not support tools"}') == (
        "model does not support tools"  # Ollama
    )
    assert upstream_message('{"object": "error", "message": "too long"}') == "too long"  # vLLM
    assert upstream_message("plain\ntext") == "plain text"
    assert upstream_message("") == "(empty body)"
    assert len(upstream_message("x" * 5000)) == 500
