"""``POST /execute`` and ``/sessions/{id}`` over HTTP with the demo tools."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.http_checks import assert_error
from toolrun.config import Settings
from toolrun.nl.ranking import DEFAULT_MIN_FIT, fit_score
from toolrun.registry.tool import Tool
from toolrun.server.app import create_app

BFCL = Path("/work/shared/benchmarks/bfcl")


def app_for(data: Path) -> TestClient:
    return TestClient(create_app(Settings(data_dir=data, demo=True, workers=2, ws_port=None)))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with app_for(tmp_path / "data") as client:
        yield client


def execute(client: TestClient, **body: Any) -> dict[str, Any]:
    reply = client.post("/execute", json=body)
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    assert "error" not in answer
    return answer


def test_the_seed_shape_plus_arguments(client: TestClient) -> None:
    answer = execute(client, prompt="What's the weather in Paris?")
    assert {"function", "code", "execution_result", "context", "arguments"} <= set(answer)
    assert answer["function"].startswith("weather_lookup")
    assert answer["arguments"] == {"city": "Paris", "unit": "C"}
    assert answer["status"] == "executed"
    assert answer["execution_result"]["structuredContent"]["temperature"] == 14
    assert answer["context"] == "No previous interactions."
    ast.parse(answer["code"])
    assert re.search(r"= weather_lookup\w*\(city='Paris', unit='C'\)", answer["code"])


def test_a_command_tool_runs_through_the_executor(client: TestClient) -> None:
    answer = execute(client, prompt="increment 41", filter={"name": "binary-increment-tool"})
    assert answer["function"] == "binary-increment-tool"
    assert answer["execution_result"]["structuredContent"] == {"result": 42}
    assert client.get(f"/jobs/{answer['job_id']}").status_code == 200


def test_missing_arguments_are_listed_and_nothing_runs(client: TestClient) -> None:
    answer = execute(client, prompt="what's the weather like?", filter={"name": "weather_lookup"})
    assert answer["status"] == "missing_arguments"
    assert answer["missing"] == ["city"]
    assert answer["execution_result"] is None and "job_id" not in answer


def test_no_fit_runs_nothing(client: TestClient) -> None:
    before = client.get("/jobs").json()
    answer = execute(client, prompt="bake me a chocolate cake", candidates=True)
    assert answer["status"] == "no_fit"
    assert answer["function"] is None and answer["code"] is None
    assert answer["execution_result"] is None
    assert "no tool fits" in answer["message"]
    assert client.get("/jobs").json() == before


def test_dry_run_plans_without_running(client: TestClient) -> None:
    answer = execute(client, prompt="weather in Tokyo in Fahrenheit", dry_run=True)
    assert answer["status"] == "planned"
    assert answer["arguments"] == {"city": "Tokyo", "unit": "F"}
    assert answer["execution_result"] is None and "job_id" not in answer
    ast.parse(answer["code"])


def test_candidates_with_scores_and_filter(client: TestClient) -> None:
    answer = execute(
        client,
        prompt="weather in Tokyo",
        candidates=True,
        k=2,
        dry_run=True,
        filter={"namespace": "weather"},
    )
    found = answer["candidates"]
    assert 1 <= len(found) <= 2
    assert all({"function", "score", "fit", "session_boost"} <= set(c) for c in found)
    assert [c["score"] for c in found] == sorted((c["score"] for c in found), reverse=True)
    assert all(c["function"].startswith("weather") for c in found)


def test_sessions_follow_ups_and_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with app_for(data) as client:
        first = execute(
            client,
            prompt="weather in Paris",
            session_id="trip-1",
            filter={"name": "weather_lookup", "version": "v1.0.0-stable"},
        )
        tool = first["function"]
        same = execute(client, prompt="same for Tokyo", session_id="trip-1")
        assert same["follow_up"] and same["function"] == tool
        assert same["arguments"] == {"city": "Tokyo", "unit": "C"}
        assert "weather in Paris" in same["context"]
    with app_for(data) as client:  # a new app on the same data directory
        now = execute(client, prompt="now in Fahrenheit", session_id="trip-1")
        assert now["function"] == tool and now["arguments"] == {"city": "Tokyo", "unit": "F"}
        assert now["execution_result"]["structuredContent"]["unit"] == "F"
        history = client.get("/sessions/trip-1").json()
        assert [t["prompt"] for t in history["turns"]] == [
            "weather in Paris",
            "same for Tokyo",
            "now in Fahrenheit",
        ]
        assert history["turns"][-1]["arguments"] == {"city": "Tokyo", "unit": "F"}
        assert client.delete("/sessions/trip-1").json() == {"session_id": "trip-1", "deleted": 3}
        assert_error(client.get("/sessions/trip-1"), 404, "not_found", "trip-1")
        assert_error(client.delete("/sessions/trip-1"), 404, "not_found")


def test_again_with_a_new_number(client: TestClient) -> None:
    execute(client, prompt="increment 41", session_id="s", filter={"name": "increment"})
    again = execute(client, prompt="again with 5", session_id="s")
    assert again["function"] == "increment" and again["arguments"] == {"value": 5}
    assert again["execution_result"]["structuredContent"] == {"result": 6}


def test_the_session_boosts_the_tools_it_used(client: TestClient) -> None:
    execute(
        client,
        prompt="weather_lookup_v2 in Paris",
        session_id="b",
        filter={"version": "v2.0.0-beta"},
    )
    answer = execute(
        client, prompt="weather in Rome", session_id="b", candidates=True, dry_run=True
    )
    boosted = {c["function"]: c["session_boost"] for c in answer["candidates"]}
    assert boosted.get("weather_lookup:v2.0.0-beta", 0) > 0
    assert answer["function"] == "weather_lookup:v2.0.0-beta"


@pytest.mark.parametrize(
    ("body", "status", "type_"),
    [
        ({}, 422, "invalid_request"),
        ({"prompt": ""}, 422, "invalid_request"),
        ({"prompt": "x", "k": 0}, 422, "invalid_request"),
        ({"prompt": "x", "unknown": 1}, 422, "invalid_request"),
        ({"prompt": "x", "session_id": "bad id/../"}, 422, "invalid_request"),
        ({"prompt": "weather", "filter": {"$bogus": 1}}, 400, "invalid_query"),
    ],
)
def test_bad_input_is_a_4xx_in_the_error_shape(
    client: TestClient, body: dict[str, Any], status: int, type_: str
) -> None:
    assert_error(client.post("/execute", json=body), status, type_)


def test_hostile_prompts_stay_data(client: TestClient) -> None:
    prompt = "weather in city \"Paris'''\n\"); __import__('os').system('id') #\""
    answer = execute(client, prompt=prompt, filter={"name": "weather_lookup"}, dry_run=True)
    tree = ast.parse(answer["code"])
    assert "__import__" not in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _bfcl_scores(name: str) -> list[float]:
    scores = []
    for line in (BFCL / name).read_text().splitlines():
        case = json.loads(line)
        question = case["question"][0]
        prompt = (question[-1] if isinstance(question, list) else question)["content"]
        spec = case["function"][0]
        props = (spec.get("parameters") or {}).get("properties") or {}
        tool = Tool(
            name="candidate",
            description=f"{spec['name']} {spec.get('description', '')}",
            input_schema={
                "type": "object",
                "properties": {
                    k: {"description": str(v.get("description", ""))} for k, v in props.items()
                },
            },
        )
        scores.append(fit_score(prompt, tool))
    return scores


@pytest.mark.skipif(not BFCL.is_dir(), reason="the BFCL benchmark files are not here")
def test_the_fit_threshold_separates_bfcl_cases() -> None:
    relevant = _bfcl_scores("BFCL_v4_simple_python.json")
    irrelevant = _bfcl_scores("BFCL_v4_irrelevance.json")
    kept = sum(s >= DEFAULT_MIN_FIT for s in relevant) / len(relevant)
    refused = sum(s < DEFAULT_MIN_FIT for s in irrelevant) / len(irrelevant)
    assert kept >= 0.93 and refused >= 0.6, (kept, refused)


def test_the_generated_code_itself_runs_in_the_sandbox(
    client: TestClient, sandbox_available: None
) -> None:
    answer = execute(client, prompt="What's the weather in Paris?")
    assert answer["code_run"]["tier"] == "sandbox" and answer["code_run"]["status"] == "ok"
    reading = answer["execution_result"]["structuredContent"]
    assert answer["output"] == f"Result: {reading}\n"
    assert client.get(f"/jobs/{answer['job_id']}").json()["status"] == "succeeded"


def test_a_hostile_value_stays_a_string_when_the_code_runs(
    client: TestClient, sandbox_available: None
) -> None:
    hostile = "x'); __import__('os').system('touch /tmp/pwned'); ('\"\"\"\n"
    answer = execute(
        client, prompt=f"weather for city: {json.dumps(hostile)}", filter={"name": "weather_lookup"}
    )
    city = answer["arguments"]["city"]
    assert "__import__" in city  # the value was taken as it came...
    assert answer["status"] == "executed"
    assert answer["execution_result"]["structuredContent"]["city"] == city  # ...and stayed data
    assert not Path("/tmp/pwned").exists()
