"""Declarative chains: a stored DAG of tool calls registered as a tool of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.http_checks import assert_error
from toolrun.config import Settings
from toolrun.registry.tool import Tool
from toolrun.server.app import create_app

TOOLS = "tests.fixtures.job_tools"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", demo=True, workers=2, ws_port=None)
    with TestClient(create_app(settings)) as client:
        platform = client.app.state.platform  # type: ignore[attr-defined]
        for name in ("rendezvous", "flaky"):
            runtime = {"kind": "python", "target": f"{TOOLS}:{name}"}
            platform.tools.create(Tool(name=name, runtime=runtime))  # type: ignore[arg-type]
        yield client


def ref(path: str) -> dict[str, str]:
    return {"$ref": path}


def register(client: TestClient, name: str, runtime: dict[str, Any], **extra: Any) -> Any:
    body = {"name": name, "description": "a chain", "runtime": runtime, **extra}
    return client.post("/tool", json=body)


WEATHER_REPORT = {
    "kind": "chain",
    "steps": [
        {"id": "here", "tool": "weather_lookup", "arguments": {"city": ref("input.city")}},
        {"id": "paris", "tool": "weather_lookup", "arguments": {"city": "Paris", "unit": "C"}},
        {
            "id": "bump",
            "tool": "increment",
            "arguments": {"value": ref("steps.here.temperature")},
            "after": ["paris"],
        },
    ],
    "output": {
        "here": ref("steps.here.temperature"),
        "paris": ref("steps.paris.temperature"),
        "bumped": ref("steps.bump.result"),
    },
}


def test_a_chain_maps_outputs_into_inputs_and_is_invoked_like_any_tool(
    client: TestClient,
) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    reply = register(client, "weather_report", WEATHER_REPORT, input_schema=schema)
    assert reply.status_code == 201, reply.text
    answer = client.post("/tools/weather_report/invoke", json={"city": "Delhi"}).json()
    assert answer["isError"] is False, answer
    result = answer["structuredContent"]
    direct = client.post("/tools/weather_lookup/invoke", json={"city": "Delhi"}).json()
    delhi = direct["structuredContent"]["temperature"]
    assert (result["here"], result["bumped"]) == (delhi, delhi + 1)
    steps = result["steps"]
    assert set(steps) == {"here", "paris", "bump"}
    assert steps["bump"]["arguments"] == {"value": delhi}
    assert all(step["status"] == "succeeded" for step in steps.values())
    # invalid chain arguments are refused before anything runs
    assert_error(client.post("/tools/weather_report/invoke", json={}), 422, "invalid_arguments")


def test_parallel_branches_run_at_the_same_time(client: TestClient, tmp_path: Path) -> None:
    """Each branch waits for the other to start: the chain finishes only if they overlap."""
    folder = str(tmp_path)
    chain = {
        "kind": "chain",
        "steps": [
            {
                "id": "left",
                "tool": "rendezvous",
                "arguments": {"folder": folder, "me": "left", "other": "right"},
            },
            {
                "id": "right",
                "tool": "rendezvous",
                "arguments": {"folder": folder, "me": "right", "other": "left"},
            },
            {
                "id": "join",
                "tool": "increment",
                "arguments": {"value": 1},
                "after": ["left", "right"],
            },
        ],
        "output": [ref("steps.left"), ref("steps.right"), ref("steps.join.result")],
    }
    assert register(client, "meet", chain, policy={"timeout_s": 20}).status_code == 201
    answer = client.post("/tools/meet/invoke", json={}).json()
    assert answer["isError"] is False, answer
    assert answer["structuredContent"]["result"] == ["left", "right", 2]


def test_a_failing_step_fails_the_chain_and_says_which(client: TestClient, tmp_path: Path) -> None:
    chain = {
        "kind": "chain",
        "steps": [
            {"id": "first", "tool": "increment", "arguments": {"value": 1}},
            {
                "id": "boom",
                "tool": "flaky",
                "arguments": {"counter": str(tmp_path / "c"), "failures": 9},
                "after": ["first"],
            },
            {"id": "never", "tool": "increment", "arguments": {"value": ref("steps.boom.x")}},
        ],
    }
    assert register(client, "broken", chain).status_code == 201
    answer = client.post("/tools/broken/invoke", json={}).json()
    assert answer["isError"] is True
    assert "step 'boom' (flaky) failed" in answer["content"][0]["text"]
    steps = answer["structuredContent"]["steps"]
    assert steps["first"]["status"] == "succeeded" and steps["boom"]["status"] == "failed"
    assert "never" not in steps


def test_a_chain_can_be_found_by_search(client: TestClient) -> None:
    body = {
        "name": "morning_brief",
        "description": "Morning weather brief for two cities",
        "runtime": WEATHER_REPORT,
    }
    assert client.post("/tool", json=body).status_code == 201
    hits = client.post("/search", json={"query": "weather brief for the morning", "k": 3}).json()
    assert "morning_brief" in [hit["tool_id"] for hit in hits["results"]]


@pytest.mark.parametrize(
    ("runtime", "needle"),
    [
        ({"kind": "chain", "steps": []}, "steps"),
        (
            {
                "kind": "chain",
                "steps": [{"id": "a", "tool": "increment"}, {"id": "a", "tool": "increment"}],
            },
            "repeated: a",
        ),
        (
            {
                "kind": "chain",
                "steps": [
                    {"id": "a", "tool": "increment", "arguments": {"value": ref("steps.b")}},
                    {"id": "b", "tool": "increment", "arguments": {"value": ref("steps.a")}},
                ],
            },
            "cycle: a -> b -> a",
        ),
        (
            {
                "kind": "chain",
                "steps": [
                    {"id": "a", "tool": "increment", "arguments": {"value": ref("steps.zz")}}
                ],
            },
            "names no step 'zz'",
        ),
        (
            {
                "kind": "chain",
                "steps": [
                    {"id": "a", "tool": "increment", "arguments": {"value": ref("env.HOME")}}
                ],
            },
            "must be 'input.<name>",
        ),
        (
            {"kind": "chain", "steps": [{"id": "a", "tool": "increment", "after": ["q"]}]},
            "'after' names no step 'q'",
        ),
    ],
)
def test_malformed_chains_are_refused_and_nothing_is_stored(
    client: TestClient, runtime: dict[str, Any], needle: str
) -> None:
    reply = register(client, "bad_chain", runtime)
    assert reply.status_code == 422, reply.text
    assert needle in reply.text
    assert client.get("/tool/bad_chain").status_code == 404


def test_a_step_naming_a_missing_tool_is_refused_at_submit(client: TestClient) -> None:
    chain = {"kind": "chain", "steps": [{"id": "a", "tool": "no_such_tool"}]}
    assert register(client, "dangling", chain).status_code == 201
    reply = client.post("/tools/dangling/invoke", json={})
    assert_error(reply, 422, "not_executable", "step 'a'", "no_such_tool")
