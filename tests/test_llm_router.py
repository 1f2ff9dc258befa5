"""``POST /execute`` with an LLM: the planner against the in-process fake, then the whole app
against a scripted OpenAI-compatible server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.llm_server import Recorded, Reply, ScriptedLLMServer, calls, error, says
from tests.servers import free_port
from toolrun.config import Settings
from toolrun.llm import AssistantMessage, FakeLLM, LLMRejected
from toolrun.nl.llm_router import LLMPlanner, find_json_object, offered_names
from toolrun.nl.sessions import Turn
from toolrun.registry.tool import Tool
from toolrun.server.app import create_app

WEATHER = Tool(
    name="weather",
    description="Current weather of a city.",
    input_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
        "required": ["city"],
    },
)
ORDER = Tool(
    name="order",
    description="Order a product.",
    input_schema={
        "type": "object",
        "properties": {"product": {"type": "string"}, "quantity": {"type": "integer"}},
        "required": ["product"],
    },
)


# -- the planner against FakeLLM -------------------------------------------------------------


@pytest.mark.anyio
async def test_fake_native_call_with_the_candidates_as_tools() -> None:
    fake = FakeLLM([AssistantMessage.calling("weather", {"city": "Paris"})])
    history = [Turn("s", "order a pizza", "executed", "order", {"product": "pizza"})]
    decision = await LLMPlanner(fake).decide("weather in Paris", history, [WEATHER, ORDER])
    assert decision.tool is WEATHER and decision.arguments == {"city": "Paris"}
    assert (decision.error, decision.missing, decision.requests) == (None, [], 1)
    [request] = fake.requests
    assert [t["function"]["name"] for t in request["tools"]] == ["weather", "order"]
    assert request["tools"][0]["function"]["parameters"] == WEATHER.input_schema
    assert request["tool_choice"] == "auto" and request["temperature"] == 0
    system, user = request["messages"]
    assert user == {"role": "user", "content": "weather in Paris"}
    assert """'order a pizza' -> order({"product": "pizza"}) [executed]""" in system["content"]


@pytest.mark.anyio
async def test_fake_repair_round_shows_the_validation_error() -> None:
    fake = FakeLLM(
        [
            AssistantMessage.calling("weather", {"city": 7, "unit": "K"}, id="c1"),
            AssistantMessage.calling("weather", {"city": "Paris", "unit": "C"}, id="c2"),
        ]
    )
    decision = await LLMPlanner(fake).decide("weather in Paris", [], [WEATHER])
    assert decision.arguments == {"city": "Paris", "unit": "C"} and decision.repaired
    repair = fake.requests[1]["messages"]
    assert repair[-2]["tool_calls"][0]["id"] == "c1"
    assert repair[-1]["role"] == "tool" and repair[-1]["tool_call_id"] == "c1"
    assert "/city: 7 is not of type 'string'" in repair[-1]["content"]
    assert "/unit: 'K' is not one of ['C', 'F']" in repair[-1]["content"]


@pytest.mark.anyio
async def test_fake_prose_is_asked_again_in_json_and_none_means_no_fit() -> None:
    fake = FakeLLM(
        [
            AssistantMessage.text("I cannot bake cakes with these."),
            AssistantMessage.text('Sure:\n```json\n{"function": null, "reason": "no baking"}\n```'),
        ]
    )
    decision = await LLMPlanner(fake).decide("bake a cake", [], [WEATHER, ORDER])
    assert decision.tool is None and decision.reason == "no baking" and decision.error is None
    assert decision.mode == "json" and decision.requests == 2
    second = fake.requests[1]
    assert "tools" not in second
    assert '"function": null' in second["messages"][0]["content"]
    assert "- weather: Current weather of a city." in second["messages"][0]["content"]


@pytest.mark.anyio
async def test_fake_json_form_inside_a_native_text_reply_is_taken() -> None:
    reply = 'Calling {"name": "order", "arguments": "{\\"product\\": \\"tea\\"}"} now'
    fake = FakeLLM([AssistantMessage.text(reply)])
    decision = await LLMPlanner(fake).decide("order tea", [], [WEATHER, ORDER])
    assert decision.tool is ORDER and decision.arguments == {"product": "tea"}
    assert decision.requests == 1


@pytest.mark.anyio
async def test_fake_tools_refused_switches_to_json_for_good() -> None:
    refused = LLMRejected("refused", status=400, upstream_message="model does not support tools")
    answer = AssistantMessage.text('{"function": "weather", "arguments": {"city": "Oslo"}}')
    fake = FakeLLM([refused, answer, answer])
    planner = LLMPlanner(fake)
    first = await planner.decide("weather in Oslo", [], [WEATHER])
    assert first.mode == "json" and first.arguments == {"city": "Oslo"}
    assert planner.native_tools is False
    second = await planner.decide("weather in Oslo", [], [WEATHER])
    assert second.requests == 1 and "tools" not in fake.requests[2]


@pytest.mark.anyio
async def test_fake_a_python_call_where_json_was_asked_is_read_with_ast() -> None:
    refused = LLMRejected("refused", status=400, upstream_message="tools are not supported")
    reply = '<think>weather</think>\nSure:\n```python\nweather(city="Delhi", unit="C")\n```'
    fake = FakeLLM([refused, AssistantMessage.text(reply)])
    decision = await LLMPlanner(fake).decide("weather in Delhi", [], [WEATHER, ORDER])
    assert decision.tool is WEATHER and decision.arguments == {"city": "Delhi", "unit": "C"}
    assert decision.mode == "json" and decision.error is None


@pytest.mark.anyio
async def test_fake_a_hostile_python_answer_is_never_evaluated() -> None:
    reply = "```python\nweather(city=__import__('os').system('id'))\n```"
    fake = FakeLLM([AssistantMessage.text(reply), AssistantMessage.text(reply)])
    decision = await LLMPlanner(fake, native_tools=False).decide("weather", [], [WEATHER])
    assert decision.tool is None or decision.error is not None
    assert decision.arguments in (None, {})


@pytest.mark.anyio
async def test_fake_other_refusals_propagate() -> None:
    fake = FakeLLM([LLMRejected("bad key", status=401, upstream_message="invalid api key")])
    with pytest.raises(LLMRejected):
        await LLMPlanner(fake).decide("weather in Oslo", [], [WEATHER])


@pytest.mark.anyio
async def test_fake_missing_required_after_repair_is_missing_arguments() -> None:
    ask = AssistantMessage.calling("weather", {"unit": "F"})
    fake = FakeLLM([ask, AssistantMessage.text("Which city do you mean?")])
    decision = await LLMPlanner(fake).decide("weather in fahrenheit", [], [WEATHER])
    assert decision.tool is WEATHER and decision.missing == ["city"] and decision.error is None
    assert "required arguments are missing: city" in fake.requests[1]["messages"][-1]["content"]


@pytest.mark.anyio
async def test_fake_unreadable_twice_is_an_error_and_scripts_must_not_run_out() -> None:
    prose, json_round, repair = "hmm", "what?", "no idea"
    fake = FakeLLM([AssistantMessage.text(t) for t in (prose, json_round, repair)])
    decision = await LLMPlanner(fake).decide("do it", [], [WEATHER])
    assert decision.tool is None and decision.error is not None and decision.requests == 3
    assert "could not be read" in decision.error and "'no idea'" in decision.error
    assert (
        "no JSON object of the asked form in 'what?'" in fake.requests[2]["messages"][-1]["content"]
    )
    with pytest.raises(AssertionError, match="no scripted reply"):
        await fake.chat([])


def test_two_versions_of_a_name_are_offered_by_id() -> None:
    v1 = WEATHER.with_changes(version="v1.0.0-stable")
    v2 = WEATHER.with_changes(version="v2.0.0-beta")
    assert list(offered_names([v1, v2, ORDER])) == [
        "weather_v1_0_0-stable",
        "weather_v2_0_0-beta",
        "order",
    ]


def test_json_is_found_in_fences_and_prose() -> None:
    assert find_json_object('x ```json\n{"a": 1}\n``` y {"b": 2}') == {"a": 1}
    assert find_json_object('I think {not json} then {"b": [1, {"c": 2}]} end') == {
        "b": [1, {"c": 2}]
    }
    assert find_json_object("no object [1, 2]") is None


def test_the_llm_settings_go_together() -> None:
    with pytest.raises(ValueError, match="set both"):
        Settings(llm_base_url="http://127.0.0.1:1/v1")
    with pytest.raises(ValueError, match="http"):
        Settings(llm_base_url="127.0.0.1:1", llm_model="m")


# -- the app against a scripted OpenAI-compatible server -------------------------------------


@pytest.fixture
def llm() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as server:
        yield server


def app_with_llm(data: Path, base_url: str, **settings: Any) -> TestClient:
    options: dict[str, Any] = {
        "data_dir": data,
        "demo": True,
        "workers": 1,
        "ws_port": None,
        "llm_base_url": base_url,
        "llm_model": "scripted-model",
        "llm_api_key": "sk-test",
        "llm_max_retries": 0,
        **settings,
    }
    return TestClient(create_app(Settings(**options)))


@pytest.fixture
def client(llm: ScriptedLLMServer, tmp_path: Path) -> Iterator[TestClient]:
    with app_with_llm(tmp_path / "data", llm.url) as client:
        yield client


def execute(client: TestClient, **body: Any) -> dict[str, Any]:
    reply = client.post("/execute", json=body)
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


def offered(request: Recorded) -> list[str]:
    return [t["function"]["name"] for t in request.json()["tools"]]


def calling(prefix: str, arguments: dict[str, Any]) -> Any:
    """A reply calling the offered tool whose name starts with ``prefix`` (names depend on
    which versions retrieval ranked)."""

    def reply(request: Recorded) -> Reply:
        return calls(next(n for n in offered(request) if n.startswith(prefix)), arguments)

    return reply


def jobs(client: TestClient) -> Any:
    return client.get("/jobs").json()


def test_the_model_picks_a_tool_and_it_runs(llm: ScriptedLLMServer, client: TestClient) -> None:
    llm.script(calling("weather_lookup", {"city": "Paris", "unit": "C"}))
    answer = execute(client, prompt="What's the weather in Paris?", candidates=True)
    assert answer["status"] == "executed" and answer["planner"] == "llm"
    assert answer["function"].startswith("weather_lookup")
    assert answer["arguments"] == {"city": "Paris", "unit": "C"}
    assert answer["execution_result"]["structuredContent"]["temperature"] == 14
    assert answer["llm"] == {"mode": "tools", "requests": 1, "repaired": False}
    assert "llm_error" not in answer
    [request] = llm.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    body = request.json()
    assert body["model"] == "scripted-model" and body["tool_choice"] == "auto"
    assert body["messages"][-1] == {"role": "user", "content": "What's the weather in Paris?"}
    # every ranked candidate is offered as a tool, with its schema
    assert len(offered(request)) == len(answer["candidates"]) >= 2
    ids = {c["function"].replace(":", "_").replace(".", "_") for c in answer["candidates"]}
    names = {c["function"].partition(":")[0] for c in answer["candidates"]}
    assert set(offered(request)) <= ids | names
    weather = next(t for t in body["tools"] if t["function"]["name"].startswith("weather_lookup"))
    assert weather["function"]["parameters"]["required"] == ["city"]


def test_invalid_arguments_get_one_repair_round(llm: ScriptedLLMServer, client: TestClient) -> None:
    llm.script(
        calling("weather_lookup", {"city": 42}),
        calling("weather_lookup", {"city": "Paris"}),
    )
    answer = execute(client, prompt="weather in Paris")
    assert answer["status"] == "executed" and answer["arguments"] == {"city": "Paris"}
    assert answer["llm"]["repaired"] is True and answer["llm"]["requests"] == 2
    repair = llm.requests[1].json()["messages"]
    assert repair[-2]["role"] == "assistant" and repair[-2]["tool_calls"]
    assert repair[-1]["role"] == "tool"
    assert "/city: 42 is not of type 'string'" in repair[-1]["content"]
    assert llm.requests[1].json()["tools"] == llm.requests[0].json()["tools"]


def test_still_invalid_after_the_repair_runs_nothing(
    llm: ScriptedLLMServer, client: TestClient
) -> None:
    before = jobs(client)
    llm.script(
        calling("weather_lookup", {"city": "Paris", "unit": "Kelvin"}),
        calling("weather_lookup", {"city": "Paris", "unit": "kelvin"}),
    )
    answer = execute(client, prompt="weather in Paris in kelvin")
    assert answer["status"] == "failed" and answer["planner"] == "llm"
    assert "still invalid after one repair round" in answer["message"]
    assert "/unit: 'kelvin' is not one of" in answer["message"]
    assert answer["execution_result"] is None and answer["code"] is None
    assert "job_id" not in answer and jobs(client) == before
    assert len(llm.requests) == 2


def test_required_values_the_prompt_lacks_are_missing(
    llm: ScriptedLLMServer, client: TestClient
) -> None:
    llm.script(calling("weather_lookup", {}), calling("weather_lookup", {"unit": "F"}))
    answer = execute(client, prompt="what's the weather like, in Fahrenheit?")
    assert answer["status"] == "missing_arguments" and answer["missing"] == ["city"]
    assert answer["arguments"] == {"unit": "F"}
    assert answer["execution_result"] is None and "job_id" not in answer


def test_the_model_choosing_none_is_no_fit(llm: ScriptedLLMServer, client: TestClient) -> None:
    before = jobs(client)
    llm.script(
        says("None of these functions can bake a cake."),
        says('{"function": null, "reason": "none of the tools bakes cakes"}'),
    )
    answer = execute(client, prompt="bake me a chocolate cake")
    assert answer["status"] == "no_fit" and answer["function"] is None
    assert "none of the tools bakes cakes" in answer["message"]
    assert "nothing was run" in answer["message"]
    assert jobs(client) == before
    assert "tools" in llm.requests[0].json() and "tools" not in llm.requests[1].json()


def test_a_tool_outside_the_candidates_is_rejected(
    llm: ScriptedLLMServer, client: TestClient
) -> None:
    before = jobs(client)
    llm.script(calls("increment", {"value": 1}), calls("increment", {"value": 1}))
    answer = execute(client, prompt="weather in Paris", filter={"namespace": "weather"})
    assert "increment" not in offered(llm.requests[0])
    assert answer["status"] == "failed" and answer["function"] is None
    assert "'increment', which is not among the candidate tools" in answer["message"]
    assert "there is no function 'increment'" in llm.requests[1].json()["messages"][-1]["content"]
    assert jobs(client) == before


def test_an_unreachable_llm_falls_back_to_the_extractor(tmp_path: Path) -> None:
    with app_with_llm(tmp_path / "data", f"http://127.0.0.1:{free_port()}/v1") as client:
        answer = execute(client, prompt="What's the weather in Paris?")
    assert answer["planner"] == "extractor" and answer["status"] == "executed"
    assert answer["arguments"] == {"city": "Paris", "unit": "C"}
    assert "cannot reach it" in answer["llm_error"] and "after 1 attempt" in answer["llm_error"]


def test_an_llm_erroring_falls_back_too(llm: ScriptedLLMServer, client: TestClient) -> None:
    llm.script(error(503, "model is loading"))
    answer = execute(client, prompt="What's the weather in Paris?", dry_run=True)
    assert answer["planner"] == "extractor" and answer["status"] == "planned"
    assert "HTTP 503: model is loading" in answer["llm_error"]


def test_tools_refused_falls_back_to_json_mode(llm: ScriptedLLMServer, client: TestClient) -> None:
    def json_answer(request: Recorded) -> Reply:
        system = request.json()["messages"][0]["content"]
        name = next(
            line[2:].partition(":")[0]
            for line in system.splitlines()
            if line.startswith("- weather_lookup")
        )
        return says(f'```json\n{{"function": "{name}", "arguments": {{"city": "Lima"}}}}\n```')

    llm.script(error(400, "this model does not support tools"), json_answer, json_answer)
    answer = execute(client, prompt="weather in Lima")
    assert answer["status"] == "executed" and answer["arguments"] == {"city": "Lima"}
    assert answer["llm"]["mode"] == "json"
    first, second = (r.json() for r in llm.requests)
    assert "tools" in first and "tools" not in second
    assert '{"function": null, "reason":' in second["messages"][0]["content"]
    again = execute(client, prompt="weather in Lima")  # remembered: JSON form at once
    assert again["status"] == "executed" and len(llm.requests) == 3
    assert "tools" not in llm.requests[2].json()


def test_a_follow_up_offers_the_session_tool_and_history(
    llm: ScriptedLLMServer, client: TestClient
) -> None:
    llm.script(calling("weather_lookup", {"city": "Paris"}))
    first = execute(client, prompt="weather in Paris", session_id="trip")
    llm.script(calling(first["function"].replace(":", "_").replace(".", "_"), {"city": "Tokyo"}))
    second = execute(client, prompt="same for Tokyo", session_id="trip")
    assert second["status"] == "executed" and second["function"] == first["function"]
    system = llm.requests[1].json()["messages"][0]["content"]
    assert f"""'weather in Paris' -> {first["function"]}({{"city": "Paris"}})""" in system
    turns = client.get("/sessions/trip").json()["turns"]
    assert [t["arguments"] for t in turns] == [{"city": "Paris"}, {"city": "Tokyo"}]
    assert client.delete("/sessions/trip").json()["deleted"] == 2


def test_the_app_closes_the_llm_client(llm: ScriptedLLMServer, tmp_path: Path) -> None:
    llm.script(says('{"function": null, "reason": "nothing"}'))
    with app_with_llm(tmp_path / "data", llm.url) as client:
        execute(client, prompt="hello there")
        router = client.app.state.nl_router  # type: ignore[attr-defined]
        backend = router.planner.backend
        assert backend._client is not None
    assert backend._client is None and client.app.state.nl_router is None  # type: ignore[attr-defined]
