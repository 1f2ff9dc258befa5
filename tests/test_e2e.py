"""End to end: ``toolrun serve`` as a real process, the real ``websockets`` client running the
seed's example code, a second real server as the external registry, and a restart."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
from pathlib import Path

import httpx
import pytest

from tests.cluster import EXECUTORS, served
from tests.processes import is_dead
from tests.servers import toolrun_server
from toolrun.demo.catalog import BINARY_INCREMENT

pytestmark = pytest.mark.e2e
SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"


def seed_clients() -> list[str]:
    """The Python WebSocket client examples of seed 002, verbatim."""
    text = (SEEDS / "002_c2b8bbbbce04730d.txt").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    return [b for b in blocks if "websockets.connect" in b]


def run_seed_client(code: str, ws_port: int) -> list[dict[str, object]]:
    """Run a seed client unchanged but for the port, capturing what it prints."""
    code = code.replace("ws://localhost:8765", f"ws://127.0.0.1:{ws_port}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "seed_client", "exec"), {"__name__": "seed_client"})
    lines = [line.removeprefix("Response: ") for line in out.getvalue().splitlines()]
    import ast

    return [ast.literal_eval(line) for line in lines]


@pytest.fixture(scope="module", params=EXECUTORS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The embedded default, and two API processes with two Celery workers."""
    with served(request.param, tmp_path_factory.mktemp("e2e")) as running:
        yield running


def test_rest_invoke_queue_and_list(server) -> None:  # type: ignore[no-untyped-def]
    reply = httpx.post(f"{server.url}/tools/{BINARY_INCREMENT}/invoke", json={"value": 5})
    assert reply.status_code == 200 and reply.json()["structuredContent"] == {"result": 6}
    job_id = reply.headers["X-Toolrun-Job"]
    request = {"tool_id": "weather_lookup", "input_data": {"city": "Delhi"}}
    queued = httpx.post(f"{server.url}/jobs", json=request)
    assert queued.status_code == 202, queued.text
    done = httpx.get(
        f"{server.url}/jobs/{queued.json()['uuid']}", params={"wait_s": 30}, timeout=40
    ).json()
    assert done["status"] == "succeeded" and done["output"] == {"temperature": 28, "unit": "C"}
    listed = [job["uuid"] for job in httpx.get(f"{server.url}/jobs", params={"limit": 50}).json()]
    assert {job_id, done["uuid"]} <= set(listed)


def test_seed_websocket_clients_run_unchanged(server) -> None:  # type: ignore[no-untyped-def]
    clients = seed_clients()
    assert len(clients) == 2, "seed 002 has a tool and a function client"
    tool_messages = run_seed_client(clients[0], server.ws_port)
    assert tool_messages[0]["success"] is True and "uuid" in tool_messages[0]
    assert tool_messages[-1]["output"] == {"result": 6}
    function_messages = run_seed_client(clients[1], server.ws_port)
    assert function_messages[-1]["output"] == {"temperature": 28, "unit": "C"}


def test_websocket_answers_on_the_main_port_too(server) -> None:  # type: ignore[no-untyped-def]
    import websockets

    async def go() -> list[dict[str, object]]:
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/tool") as ws:
            await ws.send(json.dumps({"tool_id": BINARY_INCREMENT, "input_data": {"value": 41}}))
            first = json.loads(await ws.recv())
            second = json.loads(await ws.recv())
            with pytest.raises(websockets.ConnectionClosedOK):
                await ws.recv()  # the server closes after the result
            return [first, second]

    first, second = asyncio.run(go())
    assert first["success"] is True and second["output"] == {"result": 42}


def test_websocket_error_for_unknown_tool(server) -> None:  # type: ignore[no-untyped-def]
    import websockets

    async def go() -> dict[str, object]:
        async with websockets.connect(f"{server.ws_url}/tool") as ws:
            await ws.send(json.dumps({"tool_id": "nope", "input_data": {}}))
            return dict(json.loads(await ws.recv()))

    assert asyncio.run(go()) == {
        "success": False,
        "error": "Tool not registered",
        "detail": "Tool not registered: nope",
    }


def test_register_from_external_registry(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = {"TOOLRUN_EXTERNAL_REGISTRY_URL": server.url}
    with toolrun_server(tmp_path / "second", demo=False, env=env) as second:
        reply = httpx.post(f"{second.url}/tool/register/{BINARY_INCREMENT}")
        assert reply.status_code == 201, reply.text
        assert reply.json()["tool_id"] == BINARY_INCREMENT
        call = httpx.post(f"{second.url}/tools/{BINARY_INCREMENT}/invoke", json={"value": 1})
        assert call.json()["structuredContent"] == {"result": 2}
        fn = httpx.post(f"{second.url}/function/register/weather_lookup:v1.0.0-stable")
        assert fn.status_code == 201 and fn.json()["function_id"] == "weather_lookup:v1.0.0-stable"
        missing = httpx.post(f"{second.url}/tool/register/nope")
        assert missing.status_code == 404 and "nope" in missing.json()["error"]["message"]
    with toolrun_server(tmp_path / "third", demo=False) as third:
        unconfigured = httpx.post(f"{third.url}/tool/register/x")
        assert unconfigured.status_code == 502
        assert "TOOLRUN_EXTERNAL_REGISTRY_URL" in unconfigured.json()["error"]["message"]


def test_tools_and_jobs_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    spec = {
        "tool_id": "echo",
        "tool_metadata": {"runtime": {"kind": "command", "command": ["cat"]}},
    }
    with toolrun_server(data, demo=False) as first:
        assert httpx.post(f"{first.url}/tool", json=spec).status_code == 201
        job = httpx.post(
            f"{first.url}/jobs", json={"tool_id": "echo", "input_data": {"x": 1}}
        ).json()
        done = httpx.get(f"{first.url}/jobs/{job['uuid']}", params={"wait_s": 20}).json()
        assert done["status"] == "succeeded"
    with toolrun_server(data, demo=False) as second:
        assert httpx.get(f"{second.url}/tool/echo").json()["tool_id"] == "echo"
        again = httpx.get(f"{second.url}/jobs/{job['uuid']}").json()
        assert again["status"] == "succeeded" and again["output"] == {"x": 1}


FIXTURES = Path(__file__).parent / "fixtures"


def test_kill_9_loses_no_job(tmp_path: Path) -> None:
    """Crash mid-job: the running job is marked failed (interrupted), queued jobs run after
    the restart, and nothing silently disappears."""
    import signal
    import time

    data = tmp_path / "data"
    started, release = tmp_path / "started", tmp_path / "release"
    env = {"TOOLRUN_WORKERS": "1", "PYTHONPATH": str(FIXTURES)}  # 8 dispatchers, 1 worker
    tools = [
        {"name": "blocker", "runtime": {"kind": "python", "target": "hostile_tools:block_until"}},
        {"name": "adder", "runtime": {"kind": "python", "target": "hostile_tools:add"}},
    ]
    with toolrun_server(data, demo=False, env=env) as first:
        for tool in tools:
            assert httpx.post(f"{first.url}/tool", json=tool).status_code == 201
        args = {"started": str(started), "release": str(release)}
        blocked = httpx.post(f"{first.url}/jobs", json={"tool_id": "blocker", "arguments": args})
        deadline = time.monotonic() + 30
        while not started.exists():
            assert time.monotonic() < deadline, "the blocking job never started"
            time.sleep(0.01)
        queued = [
            httpx.post(
                f"{first.url}/jobs", json={"tool_id": "adder", "arguments": {"a": i, "b": 1}}
            )
            for i in range(3)
        ]
        for reply in queued:
            assert (
                httpx.get(f"{first.url}/jobs/{reply.json()['uuid']}").json()["status"] == "queued"
            )
        worker_pid = int(started.read_text())
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while not is_dead(worker_pid):  # the worker's watchdog ends it with its parent
        assert time.monotonic() < deadline, "worker outlived the killed server"
        time.sleep(0.01)
    with toolrun_server(data, demo=False, env=env) as second:
        interrupted = httpx.get(f"{second.url}/jobs/{blocked.json()['uuid']}").json()
        assert interrupted["status"] == "failed" and "interrupted" in interrupted["error"]
        for i, reply in enumerate(queued):
            url = f"{second.url}/jobs/{reply.json()['uuid']}"
            done = httpx.get(url, params={"wait_s": 30}, timeout=40).json()
            assert done["status"] == "succeeded", done
            assert done["output"] == {"result": i + 1}


def test_worker_processes_do_not_inherit_the_servers_secrets(tmp_path: Path) -> None:
    """Settings (secrets included) are read, then dropped from the environment before any
    worker or the fork server starts: their raw environment blocks do not hold them."""
    env = {"TOOLRUN_SECRETS__API_KEY": "s3cr3t-value", "PYTHONPATH": str(FIXTURES)}
    target = "hostile_tools:environ_blocks_holding"
    spec = {"name": "environ", "runtime": {"kind": "python", "target": target}}
    with toolrun_server(tmp_path / "data", demo=False, env=env) as server:
        assert httpx.post(f"{server.url}/tool", json=spec).status_code == 201
        reply = httpx.post(f"{server.url}/tools/environ/invoke", json={"needle": "s3cr3t"})
        assert reply.json()["isError"] is False, reply.text
        assert reply.json()["structuredContent"] == {"result": []}
