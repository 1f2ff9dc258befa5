"""MCP both ways, with the official ``mcp`` SDK: toolrun's tools listed and called over
Streamable HTTP (``/mcp`` of a real ``toolrun serve``) and stdio (``toolrun mcp``); a small MCP
server's tools imported with ``toolrun register --mcp`` and called through toolrun; the README's
MCP snippets run against the same servers."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from starlette.testclient import TestClient

from tests.processes import eventually, is_dead
from tests.servers import RunningServer, free_port, toolrun_server
from toolrun.config import Settings
from toolrun.errors import InvalidDefinition, NotPermitted
from toolrun.execution.runtimes.mcp import McpRunner
from toolrun.mcp.client import McpTarget
from toolrun.mcp.names import NameTable, mcp_name
from toolrun.registry.runtimes import McpRuntime
from toolrun.registry.tool import Tool
from toolrun.response import Response, TimedOut
from toolrun.server.app import create_app
from toolrun.server.trust import check_remote_write

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ECHO = ROOT / "tests" / "fixtures" / "mcp_echo_server.py"
README = (ROOT / "README.md").read_text()
LIGHT = {"TOOLRUN_RETRIEVAL_EMBEDDER": "none", "TOOLRUN_WORKERS": "1"}
WEATHER = "weather_lookup__v1.0.0-stable"
PROTOCOL = "2026-07-28"

pytestmark = pytest.mark.anyio


# -- servers ---------------------------------------------------------------------------------


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the MCP server exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout_s}s")


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    """The fixture MCP server over Streamable HTTP on a free loopback port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(ECHO), "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data directory of :func:`server`."""
    return tmp_path_factory.mktemp("mcp") / "data"


@pytest.fixture(scope="module")
def server(data: Path) -> Iterator[RunningServer]:
    """``toolrun serve --demo`` on ``data``."""
    with toolrun_server(data, env=LIGHT) as running:
        yield running


def toolrun(*args: str, data: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """The ``toolrun`` command as a user runs it, on ``data``."""
    done = subprocess.run(
        [str(BIN / "toolrun"), *args, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **LIGHT, **(env or {})},
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def invoke(server: RunningServer, tool_id: str, arguments: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/tools/{tool_id}/invoke", json=arguments, timeout=60)


# -- serving over Streamable HTTP ------------------------------------------------------------


async def test_the_client_lists_and_calls_over_streamable_http(server: RunningServer) -> None:
    async with Client(f"{server.url}/mcp") as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert {"increment", WEATHER, "weather_lookup__v2.0.0-beta"} <= set(listed)
        assert listed[WEATHER].meta is not None
        assert listed[WEATHER].meta["toolrun"]["id"] == "weather_lookup:v1.0.0-stable"
        assert listed["increment"].input_schema["required"] == ["value"]

        result = await client.call_tool(WEATHER, {"city": "Delhi"})
        assert not result.is_error
        assert result.structured_content == {"temperature": 28, "unit": "C"}
        assert result.meta is not None
        job = result.meta["toolrun"]["job"]

        wrong = await client.call_tool("increment", {"value": "five"})
        unknown = await client.call_tool("no_such_tool", {})
    assert wrong.is_error and "invalid arguments for increment" in wrong.content[0].text  # type: ignore[union-attr]
    assert unknown.is_error and "unknown tool 'no_such_tool'" in unknown.content[0].text  # type: ignore[union-attr]
    stored = httpx.get(f"{server.url}/jobs/{job}").json()
    assert stored["status"] == "succeeded" and stored["tool_id"] == "weather_lookup:v1.0.0-stable"
    recent = httpx.get(f"{server.url}/jobs", params={"tool_id": "weather_lookup:v1.0.0-stable"})
    assert job in {j["uuid"] for j in recent.json()}


async def test_a_handshake_era_session_over_streamable_http(server: RunningServer) -> None:
    """The low-level client (initialize handshake, as SDK 1.x clients do)."""
    async with (
        streamable_http_client(f"{server.url}/mcp") as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        names = {tool.name for tool in (await session.list_tools()).tools}
        assert "binary-increment-tool" in names
        result = await session.call_tool("binary-increment-tool", {"value": 5})
    assert not result.is_error and result.structured_content == {"result": 6}  # type: ignore[union-attr]


def test_mcp_refuses_a_foreign_host(server: RunningServer) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Host": "evil.example", "Accept": "application/json, text/event-stream"}
    reply = httpx.post(f"{server.url}/mcp", json=body, headers=headers)
    assert reply.status_code == 421


def test_in_process_with_the_app_lifespan(settings: Settings) -> None:
    """JSON-RPC to ``/mcp`` of ``create_app`` (Starlette's TestClient runs the lifespan)."""
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": PROTOCOL}
    meta = {
        "io.modelcontextprotocol/protocolVersion": PROTOCOL,
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    app = create_app(settings.model_copy(update={"demo": True, "retrieval_embedder": "none"}))
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:

        def rpc(method: str, **params: Any) -> Any:
            body = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": method,
                "params": {**params, "_meta": meta},
            }
            named = {"Mcp-Name": params["name"]} if "name" in params else {}
            reply = client.post(
                "/mcp", json=body, headers={**headers, "Mcp-Method": method, **named}
            )
            assert reply.status_code == 200, reply.text
            return reply.json()["result"]

        names = [tool["name"] for tool in rpc("tools/list")["tools"]]
        assert "increment" in names and names == sorted(names)
        result = rpc("tools/call", name="increment", arguments={"value": 1})
        assert result["structuredContent"] == {"result": 2} and result["isError"] is False
        job = result["_meta"]["toolrun"]["job"]
        assert client.get(f"/jobs/{job}").json()["status"] == "succeeded"


# -- serving over stdio ----------------------------------------------------------------------


def stdio_params(data: Path, *args: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=str(BIN / "toolrun"),
        args=["mcp", "--demo", "--data-dir", str(data), *args],
        env=LIGHT,
    )


async def test_the_client_lists_and_calls_over_stdio(tmp_path: Path) -> None:
    data = tmp_path / "stdio"
    async with (
        stdio_client(stdio_params(data)) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        names = {tool.name for tool in (await session.list_tools()).tools}
        assert {"increment", WEATHER, "delivery_orderProduct"} <= names
        result = await session.call_tool("increment", {"value": 41})
        failed = await session.call_tool("increment", {})
    assert not result.is_error and result.structured_content == {"result": 42}  # type: ignore[union-attr]
    assert failed.is_error and "'value' is a required property" in failed.content[0].text  # type: ignore[union-attr]
    code, out, _ = toolrun("jobs", data=data)
    assert code == 0 and "increment" in out and "succeeded" in out


async def test_a_filter_selects_what_is_offered(tmp_path: Path) -> None:
    params = stdio_params(tmp_path / "filtered", "--filter", '{"tags": "math"}')
    async with Client(params) as client:
        names = sorted(tool.name for tool in (await client.list_tools()).tools)
        hidden = await client.call_tool(WEATHER, {"city": "Delhi"})
    assert names == ["binary-increment-tool", "increment"]
    assert hidden.is_error and "unknown tool" in hidden.content[0].text  # type: ignore[union-attr]


def test_bad_cli_input_is_one_line_and_a_nonzero_exit(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cases = [
        (("mcp", "--filter", "{not json"), "--filter is not JSON"),
        (("mcp", "--filter", '{"tags": {"$bogus": 1}}'), "$bogus"),
        (("register",), "give FILE.json or module:attr, or --mcp"),
        (("register", "tool.json", "--namespace", "x"), "go with --mcp"),
        (("register", "--mcp", "http://127.0.0.1:9/mcp"), "give --namespace"),
        (("register", "--mcp", "ftp://example.com", "--namespace", "x"), "http(s):// URL"),
        (("register", "--mcp", "http://127.0.0.1:9/mcp", "--namespace", "-x"), "namespace"),
        (("register", "--mcp", str(tmp_path / "missing"), "--namespace", "x"), "No such file"),
    ]
    for args, needle in cases:
        code, _, err = toolrun(*args, data=data)
        assert code == 1 and needle in err and err.count("\n") == 1, (args, err)


# -- importing -------------------------------------------------------------------------------


def test_import_over_streamable_http_and_call_through_toolrun(
    server: RunningServer, data: Path, echo_url: str
) -> None:
    code, out, err = toolrun("register", "--mcp", echo_url, "--namespace", "echo", data=data)
    assert code == 0, err
    assert "registered echo_add" in out and "registered echo_fail" in out
    tool = httpx.get(f"{server.url}/tool/echo_add", params={"format": "toolrun"}).json()
    assert tool["namespace"] == "echo" and tool["tags"] == ["mcp", "echo"]
    assert tool["runtime"] == {
        "kind": "mcp",
        "tool": "add",
        "url": echo_url,
        "command": None,
        "env": {},
        "cwd": None,
    }

    reply = invoke(server, "echo_add", {"a": 2, "b": 3})
    assert reply.status_code == 200 and reply.json()["structuredContent"] == {"result": 5}
    assert httpx.get(f"{server.url}/jobs/{reply.headers['X-Toolrun-Job']}").json()["status"] == (
        "succeeded"
    )
    refused = invoke(server, "echo_add", {"a": "two"})  # checked here: never sent
    assert refused.status_code == 422 and refused.json()["error"]["type"] == "invalid_arguments"
    failed = invoke(server, "echo_fail", {"message": "boom"})
    assert failed.status_code == 200 and failed.json()["isError"] is True
    assert failed.headers["X-Toolrun-Job-Status"] == "failed"


def test_import_over_stdio_keeps_one_server_process(server: RunningServer, data: Path) -> None:
    command = f"{sys.executable} {ECHO} stdio"
    args = ("register", "--mcp", command, "--namespace", "echo_stdio", "--env", "GREETING=hi")
    code, out, err = toolrun(*args, data=data)
    assert code == 0 and "registered echo_stdio_getenv" in out, err
    runtime = httpx.get(f"{server.url}/tool/echo_stdio_echo", params={"format": "toolrun"}).json()[
        "runtime"
    ]
    assert runtime["command"] == [sys.executable, str(ECHO), "stdio"]
    assert runtime["cwd"] == os.getcwd() and runtime["env"] == {"GREETING": "hi"}
    reply = invoke(server, "echo_stdio_getenv", {"name": "GREETING"})
    assert reply.json()["structuredContent"] == {"result": "hi"}
    first, second = (invoke(server, "echo_stdio_pid", {}).json() for _ in range(2))
    assert first["structuredContent"] == second["structuredContent"]


def test_an_unreachable_server_is_a_clear_error_never_a_500(
    server: RunningServer, data: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/mcp"
    code, _, err = toolrun("register", "--mcp", dead, "--namespace", "gone", data=data)
    assert code == 1 and f"cannot reach the MCP server {dead}" in err

    tool = {
        "name": "gone_echo",
        "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
        "runtime": {"kind": "mcp", "url": dead, "tool": "echo"},
    }
    assert httpx.post(f"{server.url}/tool", json=tool).status_code == 201  # a url: allowed
    reply = invoke(server, "gone_echo", {"text": "hi"})
    assert reply.status_code == 200 and reply.json()["isError"] is True
    assert f"cannot reach the MCP server {dead}" in reply.json()["content"][0]["text"]


def test_remote_clients_may_not_register_a_stdio_server(server: RunningServer) -> None:
    tool = {
        "name": "sneaky",
        "runtime": {"kind": "mcp", "command": ["/bin/sh", "-c", "id"], "tool": "x"},
    }
    reply = httpx.post(f"{server.url}/tool", json=tool)
    assert reply.status_code == 403 and "stdio MCP server" in reply.json()["error"]["message"]
    both = {"name": "both", "runtime": {"kind": "mcp", "url": "http://a/mcp", "command": ["x"]}}
    reply = httpx.post(
        f"{server.url}/tool", json={**both, "runtime": {**both["runtime"], "tool": "x"}}
    )
    assert reply.status_code == 422 and "exactly one of url" in reply.json()["error"]["message"]


# -- pieces ----------------------------------------------------------------------------------


def test_the_runtime_needs_one_transport() -> None:
    assert McpRuntime(tool="t", command="srv --flag 'a b'").command == ["srv", "--flag", "a b"]
    for bad in (
        {"tool": "t"},
        {"tool": "t", "url": "ftp://x"},
        {"tool": "t", "url": "http://x", "env": {"A": "1"}},
    ):
        with pytest.raises(ValueError):
            McpRuntime.model_validate(bad)


def test_trust_of_mcp_runtimes() -> None:
    url = Tool(name="u", runtime={"kind": "mcp", "url": "https://x/mcp", "tool": "t"})
    check_remote_write(url)  # like an http tool
    stdio = Tool(name="s", runtime={"kind": "mcp", "command": ["srv"], "tool": "t"})
    with pytest.raises(NotPermitted):
        check_remote_write(stdio)
    check_remote_write(stdio.with_changes(description="kept runtime"), stdio)


def test_names_are_mcp_safe_unique_and_map_back() -> None:
    assert mcp_name("weather_lookup:v1.0.0-stable") == WEATHER
    long_id = "n" * 128 + ":v1.0.0"
    table = NameTable(["a__v1.0.0", "a:v1.0.0", long_id, "plain"])
    assert len(set(table.to_id)) == 4
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", name) for name in table.to_id)
    assert {table.to_id[table.to_name[i]] for i in table.to_name} == set(table.to_name)
    assert table.to_name["plain"] == "plain"


def test_targets_from_the_command_line() -> None:
    assert McpTarget.parse("https://x/mcp").runtime_fields() == {
        "kind": "mcp",
        "url": "https://x/mcp",
    }
    target = McpTarget.parse("srv --port 1", {"K": "v"})
    assert target.runtime_fields() == {
        "kind": "mcp",
        "command": ["srv", "--port", "1"],
        "env": {"K": "v"},
    }
    with pytest.raises(InvalidDefinition):
        McpTarget.parse("https://x/mcp", {"K": "v"})


async def test_the_runner_times_out_and_reuses_its_session() -> None:
    runtime = {"kind": "mcp", "command": [sys.executable, str(ECHO), "stdio"], "tool": "slow"}
    slow = Tool(name="slow", runtime=runtime)
    runner = McpRunner()
    try:
        answer = await runner.run(slow, {"seconds": 0.01}, timeout_s=30)
        assert answer.structured == {"result": "done"}
        started = time.monotonic()
        late = await runner.run(slow, {"seconds": 5}, timeout_s=0.5)
        assert isinstance(late, TimedOut) and time.monotonic() - started < 3
        again: Response = await runner.run(slow, {"seconds": 0}, timeout_s=30)
        assert again.structured == {"result": "done"} and len(runner.pool._links) == 1
    finally:
        await runner.close()


async def test_a_broken_session_is_reported_then_opened_again() -> None:
    runtime = {"kind": "mcp", "command": [sys.executable, str(ECHO), "stdio"], "tool": "pid"}
    pid_tool = Tool(name="pid", runtime=runtime)
    runner = McpRunner()
    try:
        first = await runner.run(pid_tool, {}, timeout_s=30)
        assert first.structured is not None
        os.kill(first.structured["result"], signal.SIGKILL)
        await eventually(lambda: is_dead(first.structured["result"]))  # type: ignore[index]
        broken = await runner.run(pid_tool, {}, timeout_s=30)
        assert broken.is_error and "Connection closed" in broken.text
        again = await runner.run(pid_tool, {}, timeout_s=30)
        assert again.structured is not None and again.structured != first.structured
    finally:
        await runner.close()


# -- the README ------------------------------------------------------------------------------


def mcp_section() -> str:
    return README.split("\n## MCP\n", 1)[1].split("\n## ", 1)[0]


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", mcp_section(), flags=re.S)


def run_checked(argv: list[str], env: dict[str, str]) -> str:
    """A README snippet's command, which must succeed; its stdout."""
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def run_python(snippet: str, server: RunningServer, env: dict[str, str]) -> list[str]:
    code = snippet.replace("localhost:8000", f"127.0.0.1:{server.port}")
    return run_checked([sys.executable, "-c", code], env).splitlines()


def test_readme_snippets_run(
    server: RunningServer, data: Path, echo_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"  # the stdio snippet's `toolrun mcp` uses the default data dir
    home.mkdir()
    env = {
        **os.environ,
        **LIGHT,
        "HOME": str(home),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    env["TOOLRUN_DATA_DIR"] = str(data)
    over_http, over_stdio, imported = blocks("python")

    assert run_python(over_http, server, env) == [
        "True True",
        "{'temperature': 28, 'unit': 'C'} succeeded",
        "True invalid arguments for increment (1 problem): /value: 'five' is not of type 'integer'",
    ]
    assert run_python(over_stdio, server, env) == [
        "['binary-increment-tool', 'increment']",
        "{'result': 42}",
    ]

    (register,) = [b for b in blocks("bash") if "register --mcp" in b]
    port = echo_url.split(":")[2].split("/")[0]
    run_checked(["bash", "-ec", register.replace("9000", port)], env)
    assert run_python(imported, server, env) == [
        "{'content': [{'type': 'text', 'text': '5'}], 'isError': False, "
        "'structuredContent': {'result': 5}}",
        "hello",
    ]
