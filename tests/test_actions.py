"""``POST /actions``: code that calls registry tools runs in the sandbox, each call a job."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.http_checks import assert_error
from toolrun.config import Settings
from toolrun.server.app import create_app

LOOP = """\
from tools import weather_lookup, increment, binary_increment_tool
import tools

report = {}
for city in ["Paris", "Delhi", "Oslo"]:
    reading = weather_lookup(city=city, unit="C")
    report[city] = reading["temperature"]
warmest = max(report, key=report.get)
if report[warmest] > 20:
    bumped = increment(report[warmest])["result"]
else:
    bumped = tools.increment(value=0)["result"]
print(warmest, bumped, binary_increment_tool(bumped)["result"])
"""


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", demo=True, workers=2, ws_port=None)
    with TestClient(create_app(settings)) as client:
        yield client


def test_a_code_action_calls_three_tools_in_a_loop_inside_the_sandbox(
    client: TestClient, sandbox_available: None
) -> None:
    tools = ["weather_lookup", "increment", "binary-increment-tool"]
    reply = client.post("/actions", json={"code": LOOP, "tools": tools})
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["status"] == "ok", answer["error"]
    assert answer["tier"] == "sandbox"
    temperatures = {
        c["arguments"]["city"]: c["result"]["structuredContent"]["temperature"]
        for c in answer["calls"]
        if c["tool"].startswith("weather_lookup")
    }
    assert list(temperatures) == ["Paris", "Delhi", "Oslo"]
    warmest = max(temperatures, key=lambda city: temperatures[city])
    expected = temperatures[warmest] + 1 if temperatures[warmest] > 20 else 1
    assert answer["output"] == f"{warmest} {expected} {expected + 1}\n"
    assert [c["tool"].split(":")[0] for c in answer["calls"]] == [
        *["weather_lookup"] * 3,
        "increment",
        "binary-increment-tool",
    ]
    jobs = {c["job_id"] for c in answer["calls"]}
    assert len(jobs) == 5
    for job_id in jobs:
        assert client.get(f"/jobs/{job_id}").json()["status"] == "succeeded"
    assert answer["functions"]["tools.increment"].startswith("increment")


def test_tools_can_be_chosen_by_filter(client: TestClient, sandbox_available: None) -> None:
    code = "from tools import binary_increment_tool\nprint(binary_increment_tool(value=1))\n"
    reply = client.post(
        "/actions", json={"code": code, "filter": {"name": "binary-increment-tool"}}
    )
    answer = reply.json()
    assert answer["status"] == "ok", answer["error"]
    assert answer["output"] == "{'result': 2}\n"


def test_a_tool_not_offered_cannot_be_imported(client: TestClient, sandbox_available: None) -> None:
    code = "from tools import compress_files\n"
    answer = client.post("/actions", json={"code": code, "tools": ["increment"]}).json()
    assert answer["status"] == "error"
    assert answer["error"].startswith("ImportError: cannot import name 'compress_files'")
    assert answer["calls"] == []


def test_the_code_cannot_reach_the_host(client: TestClient, sandbox_available: None) -> None:
    code = "open('/etc/hostname').read()\n"
    answer = client.post("/actions", json={"code": code, "tools": ["increment"]}).json()
    assert answer["status"] == "error"
    assert "No such file or directory" in answer["error"] or "Permission" in answer["error"]


def test_an_endless_action_is_stopped_at_its_time_limit(
    client: TestClient, sandbox_available: None
) -> None:
    body = {"code": "while True:\n    pass\n", "tools": ["increment"], "timeout_s": 1}
    answer = client.post("/actions", json=body).json()
    assert answer["status"] == "timeout"
    assert "wall-clock limit of 1 s" in answer["error"]


@pytest.mark.parametrize(
    ("body", "status", "type_", "needle"),
    [
        ({"code": "print(1"}, 422, "invalid_arguments", "does not parse"),
        ({"code": "print(1)"}, 422, "invalid_arguments", "give 'tools' or 'filter'"),
        ({"code": "print(1)", "tools": ["nope"]}, 404, "tool_not_found", "nope"),
        ({"code": "print(1)", "filter": {"$bogus": 1}}, 400, "invalid_query", "$bogus"),
        (
            {"code": "print(1)", "tools": ["weather_lookup", "weather_lookup:v2.0.0-beta"]},
            422,
            "invalid_arguments",
            "would both be tools.weather_lookup",
        ),
        ({"code": "print(1)", "tools": ["increment"], "timeout_s": 0}, 422, "", "timeout_s"),
    ],
)
def test_bad_requests_are_clear_4xx(
    client: TestClient, body: dict[str, object], status: int, type_: str, needle: str
) -> None:
    reply = client.post("/actions", json=body)
    assert reply.status_code == status, reply.text
    if type_:
        assert_error(reply, status, type_, needle)
    else:
        assert needle in reply.text
