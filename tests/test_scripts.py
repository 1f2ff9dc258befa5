"""Scripts that call registry tools (``toolrun.execution.scripts``): the script runs in the
sandbox tier, every tool call it makes is a job of its own through the executor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from toolrun.config import SandboxSettings, Settings
from toolrun.errors import NotExecutable
from toolrun.execution.scripts import GENERIC, ScriptResult, ScriptRunner
from toolrun.nl.codegen import generate_code
from toolrun.registry.tool import Tool
from toolrun.response import Response
from toolrun.server.app import create_app


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", demo=True, workers=2, ws_port=None)
    with TestClient(create_app(settings)) as client:
        yield client


def run(
    client: TestClient,
    source: str,
    stubs: dict[str, dict[str, Any]],
    *,
    settings: Settings | None = None,
    allow_process: bool = False,
    timeout_s: float = 20.0,
) -> ScriptResult:
    platform = client.app.state.platform  # type: ignore[attr-defined]
    runner = ScriptRunner(settings or platform.settings, platform.executor.invoke)

    async def go() -> ScriptResult:
        return await runner.run(source, stubs, timeout_s=timeout_s, allow_process=allow_process)

    assert client.portal is not None
    return client.portal.call(go)


def tool(client: TestClient, tool_id: str) -> Any:
    return client.app.state.platform.tools.get(tool_id)  # type: ignore[attr-defined]


def test_generated_code_runs_in_the_sandbox_and_calls_the_tool_as_a_job(
    client: TestClient, sandbox_available: None
) -> None:
    weather = tool(client, "weather_lookup")
    code = generate_code(weather, {"city": "Paris", "unit": "F"})
    module = code.splitlines()[0].split()[1]  # "from <module> import weather_lookup..."
    attr = code.splitlines()[0].split()[-1]
    result = run(client, code, {module: {attr: weather}})
    assert result.ok, result.error
    assert result.tier == "sandbox"
    assert result.output == "Result: {'temperature': 57, 'unit': 'F'}\n"
    [call] = result.calls
    assert call.tool == weather.id and call.arguments == {"city": "Paris", "unit": "F"}
    assert call.status == "succeeded" and call.job_id
    job = client.get(f"/jobs/{call.job_id}").json()
    assert job["status"] == "succeeded"


def test_a_loop_of_calls_with_positional_arguments_each_a_job(
    client: TestClient, sandbox_available: None
) -> None:
    increment = tool(client, "increment")
    source = (
        "from tools import increment\n"
        "total = 0\n"
        "for n in range(3):\n"
        "    total += increment(n)['result']\n"
        "print(total)\n"
    )
    result = run(client, source, {"tools": {"increment": increment}})
    assert result.ok, result.error
    assert result.output.strip() == "6"  # (0+1) + (1+1) + (2+1)
    assert [c.arguments for c in result.calls] == [{"value": 0}, {"value": 1}, {"value": 2}]
    assert len({c.job_id for c in result.calls}) == 3


def test_the_generic_call_reaches_only_offered_tools(
    client: TestClient, sandbox_available: None
) -> None:
    source = (
        "from toolrun.nl.client import call\n"
        "from toolrun.errors import ToolCallError\n"
        "try:\n"
        "    call('compress_files', {'directory': '/', 'output_file': '/tmp/x'})\n"
        "except ToolCallError as exc:\n"
        "    print('refused:', exc)\n"
    )
    result = run(client, source, {"toolrun.nl.client": {"call": GENERIC}})
    assert result.ok, result.error
    assert "refused: compress_files failed: tool 'compress_files' is not offered" in result.output
    assert [(c.tool, c.status) for c in result.calls] == [("compress_files", "refused")]


def test_a_forged_call_frame_is_refused_like_any_other(
    client: TestClient, sandbox_available: None
) -> None:
    """The script holds the result descriptor: writing frames by hand gets it nothing more."""
    source = (
        "import os, json\n"
        "for fd in range(3, 64):\n"
        "    try:\n"
        "        os.write(fd, json.dumps({'call': {'id': 99, 'tool': 'compress_files',"
        " 'arguments': {}}}).encode() + b'\\n')\n"
        "    except OSError:\n"
        "        pass\n"
    )
    result = run(client, source, {"tools": {"increment": tool(client, "increment")}})
    assert all(c.status == "refused" and c.job_id is None for c in result.calls)
    assert [c.tool for c in result.calls] == ["compress_files"]


def test_a_failing_tool_raises_in_the_script_and_is_traced(
    client: TestClient, sandbox_available: None
) -> None:
    source = "from tools import increment\nincrement('not a number')\n"
    result = run(client, source, {"tools": {"increment": tool(client, "increment")}})
    assert result.status == "error"
    assert result.error is not None and result.error.startswith("ToolCallError: increment")
    [call] = result.calls
    assert call.status == "rejected" and call.job_id is None
    assert call.error is not None and "'not a number' is not of type 'integer'" in call.error


def test_a_tool_that_fails_as_a_job_raises_in_the_script(
    client: TestClient, tmp_path: Path, sandbox_available: None
) -> None:
    runtime = {"kind": "python", "target": "tests.fixtures.job_tools:flaky"}
    client.app.state.platform.tools.create(Tool(name="flaky", runtime=runtime))  # type: ignore[attr-defined]
    counter = str(tmp_path / "counter")
    source = (
        "from tools import flaky\n"
        f"print(flaky(counter={counter!r}, failures=0))\n"
        f"flaky(counter={counter!r}, failures=5)\n"
    )
    result = run(client, source, {"tools": {"flaky": tool(client, "flaky")}})
    assert result.output == "{'attempt': 1}\n", result
    assert result.status == "error"
    assert result.error is not None and result.error.startswith("ToolCallError: flaky failed:")
    first, second = result.calls
    assert first.status == "succeeded" and second.status == "failed"
    assert second.result is not None and second.result["isError"] is True


def test_a_script_error_comes_back_with_its_traceback(
    client: TestClient, sandbox_available: None
) -> None:
    result = run(client, "x = 1\nraise ValueError('nope')\n", {})
    assert result.status == "error"
    assert result.error is not None
    assert result.error.startswith("ValueError: nope") and "<script>" in result.error


def test_wrong_arity_is_a_type_error_in_the_script(
    client: TestClient, sandbox_available: None
) -> None:
    source = "from tools import increment\nincrement(1, 2)\n"
    result = run(client, source, {"tools": {"increment": tool(client, "increment")}})
    assert result.status == "error"
    assert result.error is not None
    assert "TypeError: increment(): too many positional arguments" in result.error
    assert result.calls == []


def test_stubs_carry_the_tool_s_signature_and_check_it_before_calling(
    client: TestClient, sandbox_available: None
) -> None:
    weather = tool(client, "weather_lookup")
    source = (
        "import inspect\n"
        "from tools import weather, increment\n"
        "print(inspect.signature(weather))\n"
        "print(inspect.signature(increment))\n"
        "try:\n"
        "    weather(unit='C')\n"
        "except TypeError as exc:\n"
        "    print(exc)\n"
        "print(weather('Oslo')['unit'])\n"
    )
    stubs = {"tools": {"weather": weather, "increment": tool(client, "increment")}}
    result = run(client, source, stubs)
    assert result.ok, result.error
    assert result.output.splitlines() == [
        "(city: str, unit: str = None)",
        "(value: int)",
        "weather(): missing a required argument: 'city'",
        "C",
    ]
    assert [c.arguments for c in result.calls] == [{"city": "Oslo"}]


def test_without_a_sandbox_only_server_generated_code_may_use_a_process(
    client: TestClient, tmp_path: Path
) -> None:
    platform = client.app.state.platform  # type: ignore[attr-defined]
    missing = platform.settings.model_copy(
        update={"sandbox": SandboxSettings(bwrap=str(tmp_path / "no-bwrap"))}
    )
    increment = tool(client, "increment")
    with pytest.raises(NotExecutable, match="sandbox tier, which is unavailable"):
        run(client, "pass\n", {}, settings=missing)
    code = generate_code(increment, {"value": 41})
    result = run(
        client,
        code,
        {"toolrun.demo.functions": {"increment": increment}},
        settings=missing,
        allow_process=True,
    )
    assert result.ok, result.error
    assert result.tier == "process"
    assert result.output.strip() == "Result: {'result': 42}"


@pytest.mark.parametrize(
    ("response", "value"),
    [
        (Response.from_value({"a": 1}), {"a": 1}),
        (Response.from_value([1, 2]), [1, 2]),
        (Response.from_value("text"), "text"),
        (Response.from_value(5), 5),
        (Response.from_value(None), None),
    ],
)
def test_a_tool_s_value_reaches_the_script_as_it_was_returned(
    response: Response, value: Any
) -> None:
    assert response.value == value


@pytest.mark.parametrize("value", [{"result": 42}, {"a": [1, 2]}, 7, "7", "text", [1, "a"], None])
def test_values_survive_the_wire_form_of_a_response(value: Any) -> None:
    wire = Response.from_dict(Response.from_value(value).to_dict())
    assert wire.value == value
