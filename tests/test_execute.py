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
from toolrun.nl.ranking import DEFAULT_MIN_FIT, OverlapRetriever, rank_candidates
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


class _CaseTools:
    """The functions one BFCL case offers, as the store :func:`rank_candidates` reads."""

    def __init__(self, functions: list[dict[str, Any]]) -> None:
        self.tools = {t.id: t for t in map(_bfcl_tool, functions)}

    def get(self, tool_id: str) -> Tool:
        return self.tools[tool_id]

    def query(self, where: Any = None, limit: int = 5000) -> list[Tool]:
        return list(self.tools.values())[:limit]


def _bfcl_schema(schema: Any) -> Any:
    """BFCL's schema dialect as JSON Schema (``dict`` -> ``object``, ``float`` -> ``number``)."""
    if isinstance(schema, list):
        return [_bfcl_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    types = {"dict": "object", "float": "number", "tuple": "array"}
    out = {}
    for key, value in schema.items():
        if key == "optional" or (key == "type" and value == "any"):
            continue
        if key == "properties":
            out[key] = {name: _bfcl_schema(spec) for name, spec in value.items()}
        else:
            out[key] = types.get(value, value) if key == "type" else _bfcl_schema(value)
    return out


def _bfcl_tool(function: dict[str, Any]) -> Tool:
    schema = _bfcl_schema(function.get("parameters") or {"type": "dict", "properties": {}})
    return Tool(
        name=function["name"], description=function.get("description") or "", input_schema=schema
    )


def _bfcl_choices(name: str) -> list[tuple[str | None, float, str | None]]:
    """For each case of a BFCL file: the top candidate's name, its fit, and the gold name."""
    gold_file = BFCL / "possible_answer" / name
    gold = {}
    if gold_file.is_file():
        for line in gold_file.read_text().splitlines():
            answer = json.loads(line)
            gold[answer["id"]] = next(iter(answer["ground_truth"][0]))
    out = []
    for line in (BFCL / name).read_text().splitlines():
        case = json.loads(line)
        prompt = "\n".join(m["content"] for m in case["question"][0] if m["role"] == "user")
        store = _CaseTools(case["function"])
        found = rank_candidates(store, OverlapRetriever(store), prompt, [], None, 5)  # type: ignore[arg-type]
        top = store.get(found[0]["function"]).name if found else None
        out.append((top, float(found[0]["fit"]) if found else 0.0, gold.get(case["id"])))
    return out


@pytest.mark.skipif(not BFCL.is_dir(), reason="the BFCL benchmark files are not here")
def test_the_fit_threshold_separates_bfcl_cases() -> None:
    """``DEFAULT_MIN_FIT`` was calibrated on the even-numbered BFCL cases (bench/nl.py): one
    function offered, it keeps relevant prompts and refuses irrelevant ones; several offered,
    the right one is chosen and fits (its lead over the others counts)."""
    relevant = _bfcl_choices("BFCL_v4_simple_python.json")
    irrelevant = _bfcl_choices("BFCL_v4_irrelevance.json")
    several = _bfcl_choices("BFCL_v4_multiple.json")
    kept = sum(fit >= DEFAULT_MIN_FIT for _, fit, _ in relevant) / len(relevant)
    refused = sum(fit < DEFAULT_MIN_FIT for _, fit, _ in irrelevant) / len(irrelevant)
    chosen = sum(t == g and fit >= DEFAULT_MIN_FIT for t, fit, g in several) / len(several)
    assert kept >= 0.88 and refused >= 0.8 and chosen >= 0.95, (kept, refused, chosen)


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
        client,
        prompt=f"weather for city: {json.dumps(hostile)}",
        filter={"name": "weather_lookup", "version": "v2.0.0-beta"},
    )
    city = answer["arguments"]["city"]
    assert "__import__" in city  # the value was taken as it came...
    assert answer["status"] == "executed"
    assert answer["execution_result"]["structuredContent"]["city"] == city  # ...and stayed data
    assert not Path("/tmp/pwned").exists()


def test_of_several_versions_the_one_its_name_resolves_to_is_chosen(client: TestClient) -> None:
    answer = execute(client, prompt="What is the weather in Delhi?", candidates=True, dry_run=True)
    assert answer["function"] == "weather_lookup:v1.0.0-stable"
    listed = [c["function"] for c in answer["candidates"]]
    assert "weather_lookup:v2.0.0-beta" not in listed  # one candidate per tool
