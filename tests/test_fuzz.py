"""The REST API fuzzed from its own OpenAPI schema (schemathesis) against a real server:
no 500 ever, every error in the one error shape, and no half-written record afterwards."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.servers import RunningServer, free_port, toolrun_server

pytestmark = pytest.mark.e2e

ECHO_TOOL = {
    "tool_id": "echo",
    "tool_search_tags": ["utils"],
    "tool_metadata": {
        "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
        "runtime": {
            "kind": "command",
            "command": [sys.executable, "-c", "import sys; print(sys.stdin.read())"],
        },
    },
}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    # No demo tools: a fuzzer must not be able to reach tools that touch the file system.
    # The server is its own external registry, so /tool/register/{id} is exercised too.
    port = free_port()
    env = {"TOOLRUN_EXTERNAL_REGISTRY_URL": f"http://127.0.0.1:{port}"}
    data = tmp_path_factory.mktemp("fuzz") / "data"
    with toolrun_server(data, demo=False, port=port, env=env) as server:
        assert httpx.post(f"{server.url}/tool", json=ECHO_TOOL).status_code == 201
        yield server


EXAMPLES_PER_OPERATION = 40


def check_response(case: schemathesis.Case, server: RunningServer) -> None:
    if case.query and "wait_s" in case.query:
        case.query["wait_s"] = 0  # keep the run short: waiting is tested elsewhere
    response = case.call(base_url=server.url, timeout=30)
    where = f"{case.method} {case.formatted_path} body={case.body!r} query={case.query!r}"
    assert response.status_code < 500, f"{where}: {response.text}"
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, f"{where}: {response.text}"
        assert set(body["error"]) == {"type", "message", "detail"}
        assert body["error"]["message"]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors(fuzz_server: RunningServer, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    fuzzed = 0
    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def fuzz(case: schemathesis.Case) -> None:
            check_response(case, fuzz_server)

        try:
            fuzz()
            fuzzed += 1
        except Unsatisfiable:
            # Some operations admit no invalid input (no parameters, or only free strings).
            assert mode == GenerationMode.NEGATIVE, operation.label
    assert fuzzed >= (len(operations) if mode == GenerationMode.POSITIVE else 5)


def test_store_is_consistent_after_fuzzing(fuzz_server: RunningServer) -> None:
    """Runs after the fuzzing above (same module): everything stored is whole and readable."""
    tools = httpx.get(f"{fuzz_server.url}/tools", timeout=30)
    assert tools.status_code == 200
    for tool in tools.json():
        one = httpx.get(f"{fuzz_server.url}/tool/{tool['tool_id']}", timeout=30)
        assert one.status_code == 200, one.text
        assert one.json() == tool
    jobs = httpx.get(f"{fuzz_server.url}/jobs", params={"limit": 1000}, timeout=30)
    assert jobs.status_code == 200
    assert all(job["tool_id"] for job in jobs.json())
    assert "echo" in {t["tool_id"] for t in tools.json()}
    log = Path(fuzz_server.log).read_text()
    assert "Traceback" not in log, log[-3000:]
