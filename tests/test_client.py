"""The Python SDK (toolrun.client): one suite run against a real server (uvicorn in a thread)
and against the in-process backend over a Registry; then what only a server has (progress
events, cancelling a running job, /execute), typed errors, retries and timeouts."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from toolrun.client import (
    AsyncClient,
    Client,
    ClientTimeout,
    Conflict,
    Forbidden,
    JobStatus,
    NotFound,
    NotSupported,
    Retry,
    TransportError,
    Unavailable,
    ValidationFailed,
)
from toolrun.config import Settings
from toolrun.demo import functions
from toolrun.demo.open_functions import DeliveryOpenFunction
from toolrun.registry.decorators import tool_from_callable
from toolrun.registry.registry import Registry
from toolrun.registry.tool import Tool

JOB_TOOLS = "tests.fixtures.job_tools"
FAST = Retry(attempts=3, backoff_s=0.01, max_backoff_s=0.05)


# -- servers ----------------------------------------------------------------------------------


@contextmanager
def threaded_server(settings: Settings) -> Iterator[str]:
    """``create_app(settings)`` served by uvicorn in a thread on a free loopback port."""
    from toolrun.cli.serve import bind
    from toolrun.server.app import create_app

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    settings = settings.model_copy(update={"port": port, "ws_port": None})
    config = uvicorn.Config(create_app(settings), log_level="warning", ws_max_size=1 << 20)
    server = uvicorn.Server(config)
    # asyncio's own loop, as `toolrun serve` runs (uvicorn's run() would pick uvloop)
    thread = threading.Thread(target=asyncio.run, args=(server.serve(sockets=[sock]),), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def demo_settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        demo=True,
        workers=2,
        retrieval_embedder="none",
        remote_python_modules=["toolrun.demo", JOB_TOOLS],
    )


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with threaded_server(demo_settings(tmp_path_factory.mktemp("sdk") / "data")) as url:
        yield url


def demo_registry() -> Registry:
    """The server's demo tools that the parity tests use, under the same names."""
    registry = Registry()
    registry.register_namespace(
        "delivery", "Handles product delivery.", DeliveryOpenFunction(["Pizza", "Burger", "Sushi"])
    )
    weather = tool_from_callable(
        functions.weather_lookup, name="weather_lookup", version="v1.0.0-stable"
    )
    registry.register(weather, func=functions.weather_lookup)
    return registry


@pytest.fixture(params=["server", "local"])
def client(request: pytest.FixtureRequest) -> Iterator[Client]:
    if request.param == "server":
        made = Client(request.getfixturevalue("server_url"), retry=FAST)
    else:
        made = Client.local(demo_registry())
    with made:
        yield made


@pytest.fixture(params=["server", "local"])
async def aclient(request: pytest.FixtureRequest) -> AsyncIterator[AsyncClient]:
    if request.param == "server":
        made = AsyncClient(request.getfixturevalue("server_url"), retry=FAST)
    else:
        made = AsyncClient.local(demo_registry())
    async with made:
        yield made


def adder(name: str) -> Tool:
    """A tool both backends can run: a Python runtime the server may import."""
    return Tool(
        name=name,
        description="Adds one to an integer.",
        tags=["math", "sdk-test"],
        input_schema={
            "type": "object",
            "properties": {"value": {"type": "integer"}},
            "required": ["value"],
        },
        runtime={"kind": "python", "target": "toolrun.demo.functions:increment"},  # type: ignore[arg-type]
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- the same calls on both backends -----------------------------------------------------------


def test_listing_and_reading(client: Client) -> None:
    functions_ = client.list_functions()
    assert "delivery_orderProduct" in functions_
    order = functions_["delivery_orderProduct"]
    assert order.input_schema["required"] == ["productName"]
    assert client.get("delivery_orderProduct") == order
    assert client.get("weather_lookup").version == "v1.0.0-stable"
    only = client.list_functions(filter={"description": {"$regex": "^Order a product"}})
    assert only.ids() == ["delivery_orderProduct"]
    ranked = client.list_functions(query="order a pizza for delivery", k=2)
    assert ranked[0].name == "delivery_orderProduct"
    both = client.list_functions({"name": {"$regex": "^delivery"}}, "what products are there")
    assert both and all(t.name.startswith("delivery") for t in both)
    assert both[0].name == "delivery_listProducts"


def test_seed_004_usage(client: Client) -> None:
    functions_ = client.list_functions()
    lookup = functions_["weather_lookup"]
    result = client.invoke(lookup, {"city": "Delhi"})
    assert result["temperature"] == 28 and result.get("unit") == "C"


def test_invoke(client: Client) -> None:
    ordered = client.invoke("delivery_orderProduct", {"productName": "Pizza", "quantity": 2})
    assert ordered.is_error is False and "Ordered 2 x Pizza" in ordered.text
    failed = client.invoke("delivery_orderProduct", {"productName": "Tea"})
    assert failed.is_error is True and "'Tea' is not available" in failed.text
    with pytest.raises(ValidationFailed) as bad:
        client.invoke("delivery_orderProduct", {"productName": 5})
    assert bad.value.status == 422 and bad.value.type == "invalid_arguments"
    assert bad.value.detail["violations"][0]["path"] == "/productName"
    with pytest.raises(NotFound) as missing:
        client.invoke("nope", {})
    assert missing.value.type == "tool_not_found" and missing.value.to_dict()["error"]["message"]


def test_tool_lifecycle(client: Client) -> None:
    name = unique("adder")
    created = client.register(adder(name))
    assert created.name == name and created.tags == ["math", "sdk-test"]
    with pytest.raises(Conflict) as taken:
        client.register(adder(name))
    assert taken.value.status == 409 and taken.value.type == "tool_exists"
    updated = client.update(name, description="Adds one.")
    assert updated.description == "Adds one." and client.get(name).description == "Adds one."
    assert client.invoke(name, {"value": 41}).structured == {"result": 42}
    assert client.delete(name) == name
    with pytest.raises(NotFound):
        client.get(name)
    with pytest.raises(ValidationFailed) as invalid:
        client.register({"name": "x", "input_schema": {"type": "string"}})
    assert invalid.value.type == "invalid_definition"


def test_jobs(client: Client) -> None:
    job = client.submit("delivery_orderProduct", {"productName": "Sushi"})
    result = job.result(timeout=30)
    assert result.is_error is False and "Ordered 1 x Sushi" in result.text
    assert job.status() == JobStatus.SUCCEEDED
    events = list(job.events())
    assert events[0].event == "snapshot" and events[-1].event == "finished"
    assert events[-1].job is not None and events[-1].job.status == JobStatus.SUCCEEDED
    with pytest.raises(Conflict) as ended:
        job.cancel()
    assert ended.value.type == "job_finished"
    again = client.job(job.id).info()
    assert again.uuid == job.id and again.arguments["productName"] == "Sushi"
    key = unique("key")
    first = client.submit("weather_lookup", {"city": "Paris"}, idempotency_key=key)
    second = client.submit("weather_lookup", {"city": "Paris"}, idempotency_key=key)
    assert first.id == second.id
    with pytest.raises(Conflict) as reused:
        client.submit("weather_lookup", {"city": "Rome"}, idempotency_key=key)
    assert reused.value.type == "idempotency_key_reused"
    with pytest.raises(NotFound):
        client.job(str(uuid.uuid4())).status()


def test_search(client: Client) -> None:
    hits = client.search("order a pizza", k=3)
    assert hits[0].tool.name == "delivery_orderProduct" and hits[0].score > 0
    assert set(hits[0].scores) == {"bm25", "dense"}
    filtered = client.search("weather", filter={"function_id": {"$regex": "^delivery"}})
    assert all(h.tool.name.startswith("delivery") for h in filtered)


@pytest.mark.anyio
async def test_async_client(aclient: AsyncClient) -> None:
    listed = await aclient.list_functions()
    assert "weather_lookup" in listed
    result = await aclient.invoke("weather_lookup", {"city": "Delhi"})
    assert result["temperature"] == 28
    job = await aclient.submit("delivery_orderProduct", {"productName": "Burger"})
    assert "Ordered 1 x Burger" in (await job.result(timeout=30)).text
    assert await job.status() == JobStatus.SUCCEEDED
    kinds = [event.event async for event in job.events()]
    assert kinds[0] == "snapshot" and kinds[-1] == "finished"
    name = unique("adder")
    await aclient.register(adder(name))
    assert (await aclient.update(name, {"description": "One more."})).description == "One more."
    assert (await aclient.get(name)).description == "One more."
    assert (await aclient.search(name.replace("-", " ")))[0].tool.name == name
    assert await aclient.delete(name) == name
    with pytest.raises(NotFound):
        await aclient.get(name)
    with pytest.raises(ValidationFailed):
        await aclient.invoke("weather_lookup", {"city": 1})


def test_local_backend_specifics() -> None:
    registry = demo_registry()
    with Client.local(registry) as client:

        def shout(text: str) -> str:
            """Say it louder."""
            return text.upper()

        created = client.register(shout)  # a function itself, not importable by path
        assert created.name == "shout" and client.invoke("shout", {"text": "hi"})["result"] == "HI"
        with pytest.raises(Conflict):
            client.register(shout)
        with pytest.raises(NotSupported) as no_nl:
            client.execute("What is the weather in Delhi?")
        assert no_nl.value.status == 501 and "server" in no_nl.value.message
        assert client.get("delivery_orderProduct").namespace == "delivery"
        assert registry.get("delivery_orderProduct").name == "orderProduct"  # unchanged


# -- what only a server does --------------------------------------------------------------------


def register_job_tool(client: Client, name: str, function: str) -> None:
    client.register(
        {"name": name, "runtime": {"kind": "python", "target": f"{JOB_TOOLS}:{function}"}}
    )


def wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def test_progress_events_over_the_websocket_and_sse(server_url: str, tmp_path: Path) -> None:
    with Client(server_url) as client:
        name = unique("steps")
        register_job_tool(client, name, "steps")
        for via, go in (("websocket", tmp_path / "go-ws"), ("sse", tmp_path / "go-sse")):
            job = client.submit(name, {"n": 3, "go": str(go)})
            events = job.events(via=via)  # type: ignore[arg-type]
            assert next(events).event == "snapshot"
            go.touch()
            rest = list(events)
            progress = [e.progress for e in rest if e.event == "progress"]
            assert progress and progress[-1] is not None and progress[-1]["fraction"] == 1.0
            assert rest[-1].event == "finished" and rest[-1].data["status"] == "succeeded"
            assert job.result(timeout=10).structured == {"result": "done"}


@pytest.mark.anyio
async def test_async_events_cancel_and_timeouts(server_url: str, tmp_path: Path) -> None:
    with Client(server_url) as setup:
        name, steps = unique("hold"), unique("steps")
        register_job_tool(setup, name, "hold")
        register_job_tool(setup, steps, "steps")
    async with AsyncClient(server_url, retry=FAST) as client:
        go = tmp_path / "go"
        job = await client.submit(steps, {"n": 2, "go": str(go)})
        seen = []
        async for event in job.events():
            seen.append(event)
            if event.event == "snapshot":
                go.touch()
        assert [e.event for e in seen][-1] == "finished"
        assert any(e.event == "progress" for e in seen)

        held = await client.submit(name, {"folder": str(tmp_path), "name": "a"})
        await asyncio.to_thread(wait_for, tmp_path / "a.started")
        assert await held.status() == JobStatus.RUNNING
        with pytest.raises(ClientTimeout):
            await held.result(timeout=0.2)
        cancelled = await held.cancel()
        assert cancelled.status == JobStatus.CANCELLED
        assert (await held.result(timeout=5)).is_error is True


def test_cancel_and_timeouts(server_url: str, tmp_path: Path) -> None:
    with Client(server_url, retry=FAST) as client:
        name = unique("hold")
        register_job_tool(client, name, "hold")
        job = client.submit(name, {"folder": str(tmp_path), "name": "b"})
        wait_for(tmp_path / "b.started")
        with pytest.raises(ClientTimeout):
            job.result(timeout=0.3)
        started = time.monotonic()
        with pytest.raises(ClientTimeout):  # a lost answer of a call without a key: not re-sent
            client.invoke(name, {"folder": str(tmp_path), "name": "c"}, timeout=0.5)
        assert time.monotonic() - started < 5
        (tmp_path / "b.release").touch()
        (tmp_path / "c.release").touch()
        assert job.result(timeout=30).structured == {"result": "b"}
        later = client.submit(name, {"folder": str(tmp_path), "name": "d"})
        wait_for(tmp_path / "d.started")
        assert later.cancel().status == JobStatus.CANCELLED
        answer = later.result(timeout=5)
        assert answer.is_error and later.status() == JobStatus.CANCELLED


def test_execute_and_forbidden(server_url: str) -> None:
    with Client(server_url) as client:
        answer = client.execute("What is the weather in Delhi?", session_id="sdk-test")
        assert answer.status == "executed" and answer.session_id == "sdk-test"
        assert answer.function is not None and answer.function.startswith("weather_lookup")
        assert answer.result is not None and answer.result["temperature"] == 28
        with pytest.raises(Forbidden) as refused:
            client.register({"name": "sh", "runtime": {"kind": "python", "target": "os:system"}})
        assert refused.value.status == 403 and refused.value.type == "not_permitted"


# -- retries, transport errors, timeouts --------------------------------------------------------


class Scripted(BaseHTTPRequestHandler):
    """Answers from ``server.script`` (status, body) in turn; records each request."""

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        server: Any = self.server
        server.seen.append((self.command, self.path, self.headers.get("idempotency-key")))
        status, body = server.script.pop(0) if server.script else (200, {})
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def scripted(*script: tuple[int, Any]) -> Iterator[tuple[str, list[Any]]]:
    httpd: Any = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    httpd.script, httpd.seen = list(script), []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.seen
    finally:
        httpd.shutdown()
        httpd.server_close()


BUSY = {"error": {"type": "queue_full", "message": "the queue is full", "detail": None}}
TOOL = Tool(name="echo").model_dump(mode="json")
JOB = {"uuid": "j1", "tool_id": "echo", "status": "queued", "arguments": {}, "attempts": 0}


def test_idempotent_requests_are_retried_after_a_503() -> None:
    with scripted((503, BUSY), (200, TOOL)) as (url, seen), Client(url, retry=FAST) as client:
        assert client.get("echo").name == "echo"
        assert [s[0] for s in seen] == ["GET", "GET"]
    with scripted((503, BUSY), (202, JOB)) as (url, seen), Client(url, retry=FAST) as client:
        assert client.submit("echo").id == "j1"  # keyed, so safe to send again
        assert len(seen) == 2 and seen[0][2] is not None and seen[0][2] == seen[1][2]
    with (
        scripted((502, b"<html>bad gateway</html>"), (200, [TOOL])) as (url, seen),
        Client(url, retry=FAST) as client,
    ):
        assert client.list_functions({"name": "echo"}).ids() == ["echo"]  # a read-only POST
        assert len(seen) == 2


def test_unsafe_requests_are_not_retried() -> None:
    with scripted((503, BUSY), (200, {})) as (url, seen), Client(url, retry=FAST) as client:
        with pytest.raises(Unavailable) as busy:
            client.invoke("echo", {})
        assert busy.value.status == 503 and busy.value.type == "queue_full"
        assert busy.value.message == "the queue is full" and len(seen) == 1
    with scripted(*[(503, BUSY)] * 3) as (url, seen), Client(url, retry=FAST) as client:
        with pytest.raises(Unavailable):
            client.get("echo")
        assert len(seen) == 3  # every attempt, then the error
    with scripted((502, b"<html>bad gateway</html>")) as (url, _):
        with Client(url, retry=Retry(attempts=1)) as client, pytest.raises(Unavailable) as bad:
            client.get("echo")
        assert bad.value.type == "http_error" and "bad gateway" in bad.value.message


def test_transport_errors_and_timeouts() -> None:
    with scripted() as (url, _):
        pass  # the port is free again: nothing listens there
    with Client(url, retry=FAST) as client, pytest.raises(TransportError) as refused:
        client.invoke("echo", {})  # never sent, so retried even though it is a POST
    assert not isinstance(refused.value, ClientTimeout) and "ConnectError" in str(refused.value)

    def too_slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    slow = httpx.MockTransport(too_slow)
    with Client(transport=slow, retry=FAST) as client, pytest.raises(ClientTimeout) as late:
        client.get("echo")
    assert isinstance(late.value, TimeoutError)


@pytest.mark.anyio
async def test_async_retries() -> None:
    with scripted((504, BUSY), (200, TOOL)) as (url, seen):
        async with AsyncClient(url, retry=FAST) as client:
            assert (await client.get("echo")).name == "echo"
        assert len(seen) == 2
    with scripted((503, BUSY)) as (url, seen):
        async with AsyncClient(url, retry=FAST) as client:
            with pytest.raises(Unavailable):
                await client.execute("hello")
        assert len(seen) == 1


# -- packaging ----------------------------------------------------------------------------------


def test_the_sdk_works_without_the_servers_dependencies() -> None:
    code = """
import sys
for name in ("fastapi", "sqlalchemy", "uvicorn", "starlette", "alembic"):
    sys.modules[name] = None
import toolrun.client, toolrun.messages
from toolrun.client import Client
from toolrun.registry.registry import Registry

def add(a: int, b: int) -> int:
    "Add two integers."
    return a + b

print(sorted(m for m in sys.modules if m.startswith("toolrun.server")))
registry = Registry()
registry.register(add, namespace="math", description="Arithmetic.")
with Client.local(registry) as client:
    print(client.invoke("math_add", {"a": 1, "b": 2}).structured)
    print(client.update("math_add", description="Adds.").description)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["[]", "{'result': 3}", "Adds."]
