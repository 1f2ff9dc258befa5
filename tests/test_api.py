"""The REST API in-process (Starlette TestClient): seed-002 routes for both families,
invocation, jobs, and the one error shape. Bad input must be a 4xx that loses nothing."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.http_checks import assert_error
from toolrun.config import Settings
from toolrun.demo.catalog import BINARY_INCREMENT
from toolrun.registry.tool import Tool
from toolrun.server.app import create_app


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", demo=True, workers=2, ws_port=None)
    with TestClient(create_app(settings)) as client:
        yield client


SEED_TOOL = {
    "tool_id": "adder",
    "tool_search_tags": ["math", "utils"],
    "tool_description": "Adds two integers.",
    "tool_default_params": {"b": 1},
    "tool_metadata": {
        "input_schema": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
        "runtime": {
            "kind": "command",
            "command": [
                sys.executable,
                "-c",
                "import json,sys; d=json.load(sys.stdin); "
                "print(json.dumps({'sum': d['a'] + d['b']}))",
            ],
        },
        "owner": "core-team",
    },
}


def test_seed_tool_lifecycle(client: TestClient) -> None:
    created = client.post("/tool", json=SEED_TOOL)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["tool_id"] == "adder"
    assert body["tool_search_tags"] == ["math", "utils"]
    assert body["tool_metadata"]["owner"] == "core-team"
    assert body["tool_metadata"]["input_schema"]["required"] == ["a", "b"]

    assert client.get("/tool/adder").json() == body
    updated = client.put("/tool/adder", json={"tool_description": "Updated description"})
    assert updated.status_code == 200
    assert updated.json()["tool_description"] == "Updated description"
    assert updated.json()["tool_search_tags"] == ["math", "utils"]

    found = client.post("/tools", json={"tool_search_tags": {"$in": ["math", "utils"]}}).json()
    assert "adder" in {t["tool_id"] for t in found}
    assert all({"math", "utils"} & set(t["tool_search_tags"]) for t in found)
    assert "weather_lookup:v1.0.0-stable" not in {t["tool_id"] for t in found}
    by_meta = client.post("/tools", json={"tool_metadata.owner": "core-team"})
    assert [t["tool_id"] for t in by_meta.json()] == ["adder"]

    result = client.post("/tools/adder/invoke", json={"a": 41})
    assert result.status_code == 200
    assert result.json()["isError"] is False
    assert result.json()["structuredContent"] == {"sum": 42}
    assert result.headers["X-Toolrun-Job-Status"] == "succeeded"

    assert client.delete("/tool/adder").json() == {"success": True, "tool_id": "adder"}
    assert_error(client.get("/tool/adder"), 404, "tool_not_found", "not registered")


def test_function_family_and_versions(client: TestClient) -> None:
    fn = client.get("/function/weather_lookup:v1.0.0-stable")
    assert fn.status_code == 200
    body = fn.json()
    assert body["function_id"] == "weather_lookup:v1.0.0-stable"
    assert body["function_metadata"]["version"] == "v1.0.0-stable"
    assert client.get("/function/weather_lookup").json()["function_id"] == body["function_id"]
    latest = client.get("/function/weather_lookup:latest").json()["function_id"]
    assert latest == "weather_lookup:v2.0.0-beta"
    updated = client.put(
        "/function/weather_lookup:v1.0.0-stable",
        json={"function_description": "Updated version with better accuracy"},
    )
    assert updated.json()["function_description"] == "Updated version with better accuracy"
    found = client.post("/functions", json={"function_search_tags": {"$in": ["weather"]}})
    ids = {f["function_id"] for f in found.json()}
    assert "weather_lookup:v1.0.0-stable" in ids
    assert all("weather" in f["function_search_tags"] for f in found.json())
    everything = client.get("/functions").json()
    assert len(everything) >= len(found.json()) and "function_id" in everything[0]


def test_invoke_python_tool_in_a_worker(client: TestClient) -> None:
    reply = client.post("/functions/weather_lookup:v1.0.0-stable/invoke", json={"city": "Delhi"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["structuredContent"] == {"temperature": 28, "unit": "C"}
    job = client.get(f"/jobs/{reply.headers['X-Toolrun-Job']}").json()
    assert job["status"] == "succeeded" and job["output"] == {"temperature": 28, "unit": "C"}


def test_invoke_binary_tool(client: TestClient) -> None:
    reply = client.post(f"/tools/{BINARY_INCREMENT}/invoke", json={"value": 5})
    assert reply.json()["structuredContent"] == {"result": 6}


def test_default_params_merge_under_arguments(client: TestClient) -> None:
    assert client.post("/tool", json=SEED_TOOL).status_code == 201
    assert client.post("/tools/adder/invoke", json={"a": 1}).json()["structuredContent"] == {
        "sum": 2
    }
    both = client.post("/tools/adder/invoke", json={"a": 1, "b": 10}).json()
    assert both["structuredContent"] == {"sum": 11}


def test_invalid_arguments_list_every_violation(client: TestClient) -> None:
    client.post("/tool", json=SEED_TOOL)
    before = client.get("/jobs").json()
    error = assert_error(
        client.post("/tools/adder/invoke", json={"a": "one", "b": "two"}),
        422,
        "invalid_arguments",
        "/a:",
        "/b:",
    )
    assert {v["path"] for v in error["detail"]["violations"]} == {"/a", "/b"}
    assert client.get("/jobs").json() == before  # nothing was queued


def test_tool_errors_are_results_not_protocol_errors(client: TestClient) -> None:
    spec = {
        "name": "fails",
        "runtime": {
            "kind": "command",
            "command": [sys.executable, "-c", "import sys; sys.exit('boom')"],
        },
    }
    assert client.post("/tool", json=spec).status_code == 201
    reply = client.post("/tools/fails/invoke", json={})
    assert reply.status_code == 200
    assert reply.json()["isError"] is True and "boom" in reply.json()["content"][0]["text"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"tool_search_tags": {"$foo": 1}}, "$foo"),
        ({"tool_search_tags": {"$in": 3}}, "$in"),
        ({"$or": []}, "$or"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_filter_is_400_naming_the_problem(
    client: TestClient, body: dict[str, Any], needle: str
) -> None:
    assert_error(client.post("/tools", json=body), 400, "invalid_query", needle)


def test_bad_tool_definitions_are_rejected_whole(client: TestClient) -> None:
    count = len(client.get("/tools").json())
    bad = [
        {"tool_id": "x", "tool_metadata": {"input_schema": {"type": 12}}},
        {"tool_id": "bad id with spaces"},
        {"tool_id": "x:notaversion"},
        {"tool_id": "x", "tool_metadata": {"runtime": {"kind": "teleport"}}},
        {
            "name": "x",
            "runtime": {
                "kind": "http",
                "url": "http://127.0.0.1:1/",
                "headers": {"Authorization": "Bearer s3cret"},
            },
        },
        {"something": "else"},
    ]
    for body in bad:
        reply = client.post("/tool", json=body)
        assert 400 <= reply.status_code < 500, (body, reply.text)
        assert reply.json()["error"]["message"]
        assert "s3cret" not in reply.text
    assert len(client.get("/tools").json()) == count


def test_duplicate_create_is_409(client: TestClient) -> None:
    assert client.post("/tool", json=SEED_TOOL).status_code == 201
    assert_error(client.post("/tool", json=SEED_TOOL), 409, "tool_exists", "already exists")


def test_bad_update_changes_nothing(client: TestClient) -> None:
    client.post("/tool", json=SEED_TOOL)
    before = client.get("/tool/adder").json()
    assert_error(
        client.put("/tool/adder", json={"tool_metadata": {"input_schema": {"type": "bogus"}}}),
        422,
        "invalid_definition",
    )
    assert_error(
        client.put("/tool/adder", json={"colour": "red"}), 422, "invalid_definition", "colour"
    )
    assert client.get("/tool/adder").json() == before


def test_malformed_json_is_a_clear_422(client: TestClient) -> None:
    reply = client.post("/tool", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(reply, 422, "invalid_request", "JSON")


def test_unknown_route_uses_the_error_shape(client: TestClient) -> None:
    assert_error(client.get("/nowhere"), 404, "not_found")


def test_jobs_submit_wait_and_cancel(client: TestClient) -> None:
    slow = {"name": "slow", "runtime": {"kind": "command", "command": ["sleep", "30"]}}
    assert client.post("/tool", json=slow).status_code == 201
    accepted = client.post(
        "/jobs", json={"tool_id": "weather_lookup", "input_data": {"city": "Paris"}}
    )
    assert accepted.status_code == 202
    done = client.get(f"/jobs/{accepted.json()['uuid']}", params={"wait_s": 30}).json()
    assert done["status"] == "succeeded" and done["output"]["temperature"] == 14

    running = client.post("/jobs", json={"tool_id": "slow"}).json()
    cancelled = client.delete(f"/jobs/{running['uuid']}").json()
    assert cancelled["status"] == "cancelled"
    assert_error(client.delete(f"/jobs/{running['uuid']}"), 409, "job_finished")
    assert_error(client.get("/jobs/does-not-exist"), 404, "not_found")
    assert_error(client.post("/jobs", json={"input_data": {}}), 422, "invalid_request", "tool_id")


def test_websocket_lifecycle_in_process(client: TestClient) -> None:
    with client.websocket_connect("/tool") as ws:
        ws.send_json({"tool_id": BINARY_INCREMENT, "input_data": {"value": 5}})
        accepted = ws.receive_json()
        assert accepted["success"] is True and len(accepted["uuid"]) == 36
        assert ws.receive_json() == {
            "success": True,
            "uuid": accepted["uuid"],
            "output": {"result": 6},
        }
    with client.websocket_connect("/tool") as ws:
        ws.send_json({"tool_id": "missing", "input_data": {}})
        assert ws.receive_json()["error"] == "Tool not registered"
    with client.websocket_connect("/function") as ws:
        ws.send_text("not json")
        assert ws.receive_json()["success"] is False


def test_export_formats(client: TestClient) -> None:
    import re

    openai = client.get("/tools", params={"format": "openai"}).json()
    names = {entry["function"]["name"] for entry in openai}
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", name) for name in names)
    assert all(entry["type"] == "function" for entry in openai)
    mcp = client.get("/tool/weather_lookup:v1.0.0-stable", params={"format": "mcp"}).json()
    assert mcp["inputSchema"]["required"] == ["city"]
    own = client.get("/tool/weather_lookup", params={"format": "toolrun"}).json()
    assert own["version"] == "v1.0.0-stable" and own["runtime"]["kind"] == "python"
    # what was exported can be registered again, in every format
    for shape in (openai[0], mcp, own):
        reply = client.post("/tool", json=shape)
        assert reply.status_code in (201, 409), reply.text
    assert_error(client.get("/tools", params={"format": "yaml"}), 422, "invalid_request", "format")


def test_inline_jobs_are_readable_at_once(client: TestClient) -> None:
    spec = {
        "name": "fast",
        "input_schema": {"type": "object", "properties": {"value": {"type": "integer"}}},
        "runtime": {"kind": "python", "target": "toolrun.demo.functions:increment"},
        "policy": {"isolation": "inline"},
    }
    client.app.state.platform.tools.create(Tool.model_validate(spec))  # the operator's way
    for value in range(20):
        reply = client.post("/tools/fast/invoke", json={"value": value})
        job = client.get(f"/jobs/{reply.headers['X-Toolrun-Job']}").json()
        assert job["status"] == "succeeded" and job["output"] == {"result": value + 1}
    listed = client.get("/jobs", params={"tool_id": "fast"}).json()
    assert len(listed) == 20


HOSTILE = [
    ("segfault", "died"),
    ("exit_hard", "died"),
    ("raise_value_error", "ValueError: boom"),
]


def test_hostile_tools_fail_their_own_job_and_the_server_keeps_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "fixtures"))
    settings = Settings(data_dir=tmp_path / "data", demo=True, workers=1, ws_port=None)
    with TestClient(create_app(settings)) as client:
        tools = [name for name, _ in HOSTILE] + ["spin"]
        for name in tools:
            spec = {"name": name, "runtime": {"kind": "python", "target": f"hostile_tools:{name}"}}
            if name == "spin":
                spec["policy"] = {"timeout_s": 0.5}
            assert client.post("/tool", json=spec).status_code == 201
        for name, needle in HOSTILE:
            reply = client.post(f"/tools/{name}/invoke", json={})
            assert reply.status_code == 200 and reply.json()["isError"] is True
            assert needle in reply.json()["content"][0]["text"], reply.json()
            assert reply.headers["X-Toolrun-Job-Status"] == "failed"
        spun = client.post("/tools/spin/invoke", json={})
        assert spun.headers["X-Toolrun-Job-Status"] == "timed_out"
        assert "timed out after 0.5s" in spun.json()["content"][0]["text"]
        healthy = client.post("/tools/increment/invoke", json={"value": 1})
        assert healthy.json()["structuredContent"] == {"result": 2}


def test_trust_cannot_be_granted_remotely(client: TestClient) -> None:
    pwn = {
        "tool_id": "pwn",
        "tool_metadata": {
            "runtime": {"kind": "python", "target": "os:getpid"},
            "isolation": "inline",
        },
    }
    assert_error(client.post("/tool", json=pwn), 403, "not_permitted", "inline", "operator")
    assert_error(client.get("/tool/pwn"), 404, "tool_not_found")
    safe = {
        "tool_id": "p2",
        "tool_metadata": {"runtime": {"kind": "python", "target": "os:getpid"}},
    }
    assert client.post("/tool", json=safe).status_code == 201
    promote = {"tool_metadata": {"isolation": "inline"}}
    assert_error(client.put("/tool/p2", json=promote), 403, "not_permitted", "inline")
    folder = {"tool_metadata": {"source_folder": "/tmp"}}
    assert_error(client.put("/tool/p2", json=folder), 403, "not_permitted", "source_folder")
    assert (
        client.get("/tool/p2", params={"format": "toolrun"}).json()["policy"]["isolation"] is None
    )


def test_a_trusted_tool_keeps_its_runtime(client: TestClient) -> None:
    trusted = Tool(
        name="fast",
        runtime={"kind": "python", "target": "toolrun.demo.functions:increment"},
        policy={"isolation": "inline"},
    )
    client.app.state.platform.tools.create(trusted)
    hijack = {"tool_metadata": {"runtime": {"kind": "python", "target": "os:system"}}}
    assert_error(client.put("/tool/fast", json=hijack), 403, "not_permitted", "trusted")
    described = client.put("/tool/fast", json={"tool_description": "still fine"})
    assert described.status_code == 200 and described.json()["tool_description"] == "still fine"


@pytest.mark.parametrize(
    "body",
    [
        {"tool_id": "x", "tool_description": "nul \u0000 inside"},
        {"tool_id": "x:v1.0.0-" + "c" * 80},
        {"tool_id": "x", "tool_metadata": {"namespace": "n" * 200}},
        {"tool_id": "x", "tool_metadata": {"input_schema": {"$ref": "#/$defs/nope"}}},
        {"tool_id": "x", "tool_metadata": {"input_schema": {"$ref": "https://example.invalid/s"}}},
    ],
)
def test_values_the_store_cannot_keep_are_4xx(client: TestClient, body: dict[str, Any]) -> None:
    reply = client.post("/tool", json=body)
    assert 400 <= reply.status_code < 500, reply.text
    assert_error(client.get("/tool/x"), 404, "tool_not_found")


def test_nul_in_arguments_is_a_4xx_everywhere(client: TestClient) -> None:
    assert_error(
        client.post("/jobs", json={"tool_id": "weather_lookup", "input_data": {"city": "a\u0000"}}),
        422,
        "invalid_arguments",
        "U+0000",
    )
    with client.websocket_connect("/tool") as ws:
        ws.send_json({"tool_id": "weather_lookup", "input_data": {"city": "a\u0000"}})
        answer = ws.receive_json()
        assert answer["success"] is False and "U+0000" in answer["error"]


def test_schema_patterns_run_in_linear_time(client: TestClient) -> None:
    evil = {
        "name": "evil",
        "input_schema": {
            "type": "object",
            "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}},
        },
        "runtime": {"kind": "command", "command": ["cat"]},
    }
    assert client.post("/tool", json=evil).status_code == 201
    # Backtracking would not finish this century (the per-test timeout would fail it).
    reply = client.post("/tools/evil/invoke", json={"s": "a" * 5000 + "!"})
    error = assert_error(reply, 422, "invalid_arguments")
    assert [v["validator"] for v in error["detail"]["violations"]] == ["pattern"]
    lookaround = {**evil, "name": "look"}
    lookaround["input_schema"] = {"type": "object", "properties": {"s": {"pattern": "(?=a)b"}}}
    assert_error(client.post("/tool", json=lookaround), 422, "invalid_definition", "pattern")


@pytest.mark.parametrize(
    ("ref", "tool_id", "ok"),
    [
        ("weather_lookup", "weather_lookup:v1.0.0-stable", True),
        ("weather_lookup:latest", "weather_lookup:v2.0.0-beta", True),
        ("weather_lookup:v1.0.0", "weather_lookup:v1.0.0-stable", True),
        ("weather_lookup:v1.0.0", "weather_lookup:v1.0.0-beta", False),
        ("weather_lookup:v1.0.0-stable", "weather_lookup:v2.0.0", False),
        ("weather_lookup", "other_tool", False),
    ],
)
def test_an_external_answer_must_be_the_tool_asked_for(ref: str, tool_id: str, ok: bool) -> None:
    from toolrun.registry.ids import ToolRef
    from toolrun.server.routes_tools import answers

    name, _, version = tool_id.partition(":")
    assert answers(ToolRef.parse(ref), Tool(name=name, version=version or None)) is ok


def test_remote_python_targets_are_limited_to_what_the_server_offers(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", demo=True, ws_port=None)
    settings = settings.model_copy(update={"remote_python_modules": ["json"]})
    with TestClient(create_app(settings)) as client:

        def python_tool(name: str, target: str) -> dict[str, Any]:
            return {
                "tool_id": name,
                "tool_metadata": {"runtime": {"kind": "python", "target": target}},
            }

        shell = python_tool("sh", "subprocess:getoutput")
        assert_error(client.post("/tool", json=shell), 403, "not_permitted", "subprocess:getoutput")
        assert client.get("/tool/sh").status_code == 404
        offered = python_tool("weather", "toolrun.demo.functions:weather_lookup")  # a demo tool's
        assert client.post("/tool", json=offered).status_code == 201
        assert client.post("/tool", json=python_tool("dumps", "json:dumps")).status_code == 201
        swap = {"tool_metadata": {"runtime": {"kind": "python", "target": "os:system"}}}
        assert_error(client.put("/tool/weather", json=swap), 403, "not_permitted", "os:system")
        assert client.post("/tools/weather/invoke", json={"location": "Delhi"}).status_code == 200
