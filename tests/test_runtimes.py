"""The runtime runners: inline Python, commands (real scripts), HTTP (a real loopback server),
and ``ToolRunner``'s dispatch by runtime kind and isolation."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.processes import eventually, is_dead
from toolrun.config import Settings
from toolrun.errors import NotExecutable
from toolrun.execution.pool import WorkerPool
from toolrun.execution.runner import ToolRunner
from toolrun.execution.runtimes import CommandRunner, HttpRunner, InlinePythonRunner
from toolrun.registry.tool import Tool
from toolrun.response import Response

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "s3cret-t0ken/+="
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def python_tool(target: str, isolation: str = "process") -> Tool:
    return Tool.model_validate(
        {
            "name": "py",
            "runtime": {"kind": "python", "target": target},
            "policy": {"isolation": isolation},
        }
    )


def command_tool(command: list[str], mode: str = "stdin_json", **extra: Any) -> Tool:
    runtime = {"kind": "command", "command": command, "mode": mode, **extra}
    return Tool.model_validate({"name": "cmd", "runtime": runtime})


def http_tool(url: str, method: str = "POST", **extra: Any) -> Tool:
    runtime = {"kind": "http", "url": url, "method": method, **extra}
    return Tool.model_validate({"name": "web", "runtime": runtime})


# -- inline python ---------------------------------------------------------------------------


@pytest.fixture
async def inline(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[InlinePythonRunner]:
    monkeypatch.syspath_prepend(str(FIXTURES))
    runner = InlinePythonRunner()
    yield runner
    await runner.close()


async def test_inline_runs_in_this_process(inline: InlinePythonRunner) -> None:
    pid = await inline.run(python_tool("hostile_tools:getpid", "inline"), {}, 10)
    assert pid.structured == {"result": os.getpid()}
    added = await inline.run(python_tool("hostile_tools:async_add", "inline"), {"a": 1, "b": 2}, 10)
    assert added.structured == {"result": 3}


async def test_inline_errors_are_results(inline: InlinePythonRunner) -> None:
    raised = await inline.run(python_tool("hostile_tools:raise_value_error", "inline"), {}, 10)
    assert raised.is_error and raised.text.startswith("ValueError: boom\n  at hostile_tools.py:")
    own = await inline.run(python_tool("hostile_tools:raise_timeout", "inline"), {}, 10)
    assert own.text.startswith("TimeoutError: the tool's own socket timed out")
    missing = await inline.run(python_tool("hostile_tools:nothing_here", "inline"), {}, 10)
    assert missing.is_error and "cannot load tool target" in missing.text


async def test_inline_timeouts(inline: InlinePythonRunner, tmp_path: Path) -> None:
    sleeper = python_tool("hostile_tools:sleep_forever", "inline")
    assert (await inline.run(sleeper, {}, 0.1)).text == "timed out after 0.1s"
    blocker = python_tool("hostile_tools:block_until", "inline")
    args = {"started": str(tmp_path / "started"), "release": str(tmp_path / "release")}
    try:
        assert (await inline.run(blocker, args, 0.1)).text == "timed out after 0.1s"
    finally:
        (tmp_path / "release").touch()  # the thread cannot be stopped: let it finish


# -- dispatch --------------------------------------------------------------------------------


async def test_tool_runner_dispatches_by_kind_and_isolation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES))
    settings = Settings(data_dir=tmp_path, workers=1)
    runner = ToolRunner(settings, WorkerPool(1, extra_sys_path=[FIXTURES]))
    await runner.start()
    try:
        isolated = await runner.run(python_tool("hostile_tools:getpid"), {}, 10)
        assert isolated.structured is not None and isolated.structured["result"] != os.getpid()
        assert runner.pool.pids() == [isolated.structured["result"]]
        trusted = await runner.run(python_tool("hostile_tools:getpid", "inline"), {}, 10)
        assert trusted.structured == {"result": os.getpid()}
        assert runner.runner_for(http_tool("http://127.0.0.1:1/x")) is runner.http
        echo = command_tool(["/bin/sh", "-c", "echo hi"])
        assert (await runner.run(echo, {})).structured == {"result": "hi"}
        with pytest.raises(NotExecutable, match="has no runtime"):
            await runner.run(Tool(name="bare"), {}, 10)
        assert runner.timeout_for(Tool(name="t", policy={"timeout_s": 7}), None) == 7
        assert runner.timeout_for(Tool(name="t"), 1e9) == settings.max_timeout_s
    finally:
        await runner.close()
    assert all(map(is_dead, [isolated.structured["result"]]))


# -- commands --------------------------------------------------------------------------------


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def commands() -> CommandRunner:
    return CommandRunner()


async def test_stdin_json_in_json_out(commands: CommandRunner, tmp_path: Path) -> None:
    adder = script(
        tmp_path,
        "add.py",
        "import json, sys\n"
        "args = json.load(sys.stdin)\n"
        "print(json.dumps({'sum': args['a'] + args['b']}))\n",
    )
    response = await commands.run(command_tool([adder]), {"a": 2, "b": 40}, 10)
    assert not response.is_error and response.structured == {"sum": 42}


async def test_plain_stdout_is_text(commands: CommandRunner) -> None:
    response = await commands.run(command_tool(["/bin/sh", "-c", "echo hello world"]), {}, 10)
    assert response.structured == {"result": "hello world"}


async def test_argv_templates_keep_hostile_values_whole(
    commands: CommandRunner, tmp_path: Path
) -> None:
    show = script(tmp_path, "argv.py", "import json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    tool = command_tool(
        [show, "--fixed"], mode="argv", args=["--name={name}", "{name}", "{n}", "{{literal}}"]
    )
    hostile = "; rm -rf / $(whoami) `id` && echo 'x\" y"
    response = await commands.run(tool, {"name": hostile, "n": 3}, 10)
    assert response.structured == {
        "result": ["--fixed", f"--name={hostile}", hostile, "3", "{literal}"]
    }


@pytest.mark.parametrize(
    ("template", "needle"),
    [
        ("{missing}", "'missing', which was not given"),
        ("{name.__class__}", "only plain {name} placeholders"),
        ("{name[0]}", "only plain {name} placeholders"),
        ("{name!r}", "only plain {name} placeholders"),
        ("{}", "only plain {name} placeholders"),
        ("{name", "invalid template"),
    ],
)
async def test_argv_templates_only_substitute_names(
    commands: CommandRunner, template: str, needle: str
) -> None:
    tool = command_tool(["/bin/echo"], mode="argv", args=[template])
    response = await commands.run(tool, {"name": "x"}, 10)
    assert response.is_error and needle in response.text


async def test_a_failing_command_reports_status_and_stderr(commands: CommandRunner) -> None:
    tool = command_tool(["/bin/sh", "-c", "echo partial; echo 'it broke' >&2; exit 7"])
    response = await commands.run(tool, {}, 10)
    assert response.is_error
    assert response.text == "command /bin/sh exited with status 7\nstderr: it broke"
    killed = await commands.run(command_tool(["/bin/sh", "-c", "kill -9 $$"]), {}, 10)
    assert killed.is_error and "killed by SIGKILL" in killed.text


async def test_missing_programs_and_folders(commands: CommandRunner, tmp_path: Path) -> None:
    absent = await commands.run(command_tool(["/nonexistent/tool"]), {}, 10)
    assert absent.text == "command not found: /nonexistent/tool"
    unknown = await commands.run(command_tool(["toolrun-no-such-program"]), {}, 10)
    assert unknown.text == "command not found: toolrun-no-such-program"
    folder = str(tmp_path / "nowhere")
    moved = await commands.run(command_tool(["/bin/true"], cwd=folder), {}, 10)
    assert moved.text == f"working directory not found: {folder}"


async def test_a_timeout_kills_the_whole_group(commands: CommandRunner, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    tool = command_tool(["/bin/sh", "-c", f"sleep 100 & echo $! > {pid_file}; wait"])
    started = time.monotonic()
    response = await commands.run(tool, {}, 1.0)
    assert response.text == "timed out after 1s"
    assert time.monotonic() - started < 10
    grandchild = int(pid_file.read_text())
    await eventually(lambda: is_dead(grandchild))


async def test_background_leftovers_do_not_hold_the_call(commands: CommandRunner) -> None:
    tool = command_tool(["/bin/sh", "-c", "sleep 100 & echo $!"])
    started = time.monotonic()
    response = await commands.run(tool, {}, 30)
    assert time.monotonic() - started < 10
    assert response.structured is not None
    await eventually(lambda: is_dead(int(response.structured["result"])))


async def test_output_is_capped(tmp_path: Path) -> None:
    runner = CommandRunner(max_output_bytes=1000)
    noisy = command_tool(["/bin/sh", "-c", "head -c 5000 /dev/zero | tr '\\0' x"])
    response = await runner.run(noisy, {}, 10)
    assert not response.is_error
    assert response.text == "x" * 1000 + "\n[stdout truncated: 5000 bytes, showing the first 1000]"
    loud = command_tool(["/bin/sh", "-c", "head -c 50000 /dev/zero | tr '\\0' e >&2; exit 1"])
    failed = await runner.run(loud, {}, 10)
    assert failed.is_error and failed.text.endswith("e" * 100) and len(failed.text) < 2100


async def test_environment_is_passed_without_toolrun_settings(
    commands: CommandRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLRUN_SECRETS__API_KEY", "do-not-leak")
    tool = command_tool(
        ["/bin/sh", "-c", 'echo "${TOOLRUN_SECRETS__API_KEY:-unset} $EXTRA"'], env={"EXTRA": "ok"}
    )
    assert (await commands.run(tool, {}, 10)).structured == {"result": "unset ok"}


async def test_a_command_that_ignores_stdin(commands: CommandRunner) -> None:
    response = await commands.run(command_tool(["/bin/true"]), {"blob": "x" * 500_000}, 10)
    assert not response.is_error and response.structured == {"result": None}


# -- http ------------------------------------------------------------------------------------


class Upstream:
    """A real HTTP server on 127.0.0.1 (ephemeral port) that records what it receives."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                parts = urlsplit(self.path)
                seen = {
                    "method": self.command,
                    "path": parts.path,
                    "query": parse_qs(parts.query),
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": json.loads(body) if body else None,
                }
                upstream.requests.append(seen)
                if parts.path == "/slow":
                    upstream.release.wait(30)
                status, kind, payload = upstream.route(parts.path, seen)
                try:
                    self.send_response(status)
                    self.send_header("content-type", kind)
                    if parts.path == "/redirect":
                        self.send_header("location", "http://127.0.0.1:9/elsewhere")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (timeout tests)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def route(self, path: str, seen: dict[str, Any]) -> tuple[int, str, bytes]:
        if path == "/fail":
            return 500, "text/plain", f"upstream broke; you sent {seen['headers']}".encode()
        if path == "/text":
            return 200, "text/plain; charset=utf-8", "plain words ✓".encode()
        if path == "/image":
            return 200, "image/png", b"\x89PNG\r\n\x1a\nfake"
        if path == "/big":
            return 200, "text/plain", b"y" * 5000
        if path == "/redirect":
            return 302, "text/plain", b""
        return 200, "application/json", json.dumps(seen).encode()


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[Upstream]:
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    server = Upstream()
    server.thread.start()
    yield server
    server.release.set()
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[HttpRunner]:
    settings = Settings(
        data_dir=tmp_path, secrets={"api_key": SECRET}, secret_hosts={"api_key": ["127.0.0.1"]}
    )
    runner = HttpRunner(settings)
    yield runner
    await runner.close()


async def test_url_placeholders_are_encoded_and_the_rest_is_the_body(
    web: HttpRunner, upstream: Upstream
) -> None:
    tool = http_tool(upstream.url + "/items/{item}/{part}")
    args = {"item": "a/b ?#&x=1", "part": "..", "count": 2, "tags": ["x"]}
    response = await web.run(tool, args, 10)
    assert not response.is_error, response.text
    seen = upstream.requests[-1]
    assert seen["path"] == "/items/a%2Fb%20%3F%23%26x%3D1/%2E%2E"
    assert seen["body"] == {"count": 2, "tags": ["x"]}
    assert response.structured is not None and response.structured["method"] == "POST"


async def test_get_sends_the_rest_as_query_parameters(web: HttpRunner, upstream: Upstream) -> None:
    tool = http_tool(upstream.url + "/search", method="GET")
    args = {"q": "x y&z", "flag": True, "tags": ["a", "b"], "skip": None, "n": 3}
    await web.run(tool, args, 10)
    seen = upstream.requests[-1]
    assert seen["query"] == {"q": ["x y&z"], "flag": ["true"], "tags": ["a", "b"], "n": ["3"]}
    assert seen["body"] is None


@pytest.mark.parametrize(
    ("auth", "where"),
    [
        ({"secret": "API_KEY"}, ("headers", "authorization", f"Bearer {SECRET}")),
        (
            {"secret": "api_key", "scheme": "header", "name": "X-Api-Key"},
            ("headers", "x-api-key", SECRET),
        ),
        ({"secret": "api_key", "scheme": "query", "name": "key"}, ("query", "key", [SECRET])),
    ],
)
async def test_credentials_are_sent_but_never_returned(
    web: HttpRunner, upstream: Upstream, auth: dict[str, str], where: tuple[str, str, Any]
) -> None:
    tool = http_tool(upstream.url + "/echo", method="GET", auth=auth)
    response = await web.run(tool, {}, 10)
    section, key, value = where
    assert upstream.requests[-1][section][key] == value
    assert not response.is_error
    dumped = json.dumps(response.to_dict())
    assert SECRET not in dumped and "***" in dumped
    failed = await web.run(http_tool(upstream.url + "/fail", method="GET", auth=auth), {}, 10)
    assert failed.is_error and failed.text.startswith("HTTP 500")
    assert SECRET not in failed.text and "upstream broke" in failed.text


async def test_a_secret_goes_only_to_its_listed_hosts(
    web: HttpRunner, upstream: Upstream, tmp_path: Path
) -> None:
    elsewhere = upstream.url.replace("127.0.0.1", "localhost")  # same server, unlisted host
    tool = http_tool(elsewhere + "/echo", method="GET", auth={"secret": "api_key"})
    response = await web.run(tool, {}, 10)
    assert response.is_error and "TOOLRUN_SECRET_HOSTS__API_KEY" in response.text
    assert "localhost" in response.text and SECRET not in response.text
    assert upstream.requests == []
    unbound = HttpRunner(Settings(data_dir=tmp_path, secrets={"api_key": SECRET}))
    try:
        refused = await unbound.run(
            http_tool(upstream.url + "/echo", auth={"secret": "api_key"}), {}, 10
        )
    finally:
        await unbound.close()
    assert refused.is_error and "may not be sent" in refused.text
    assert upstream.requests == []


async def test_a_missing_secret_names_the_setting(web: HttpRunner, upstream: Upstream) -> None:
    tool = http_tool(upstream.url + "/echo", auth={"secret": "weather_key"})
    response = await web.run(tool, {}, 10)
    assert response.is_error and "TOOLRUN_SECRETS__WEATHER_KEY" in response.text
    assert upstream.requests == []


async def test_response_kinds(web: HttpRunner, upstream: Upstream) -> None:
    text = await web.run(http_tool(upstream.url + "/text", method="GET"), {}, 10)
    assert text.structured == {"result": "plain words ✓"}
    image = await web.run(http_tool(upstream.url + "/image", method="GET"), {}, 10)
    assert image.to_dict()["content"][0]["type"] == "image"
    moved = await web.run(http_tool(upstream.url + "/redirect", method="GET"), {}, 10)
    assert moved.is_error and moved.text.startswith("HTTP 302")


async def test_http_failures_are_results(upstream: Upstream, tmp_path: Path) -> None:
    small = HttpRunner(Settings(data_dir=tmp_path), max_response_bytes=1000)
    try:
        big = await small.run(http_tool(upstream.url + "/big", method="GET"), {}, 10)
        assert big.is_error and "larger than 1000 bytes" in big.text
        slow = await small.run(http_tool(upstream.url + "/slow"), {}, 0.3)
        assert slow.text == "timed out after 0.3s"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed_port = sock.getsockname()[1]
        refused = await small.run(http_tool(f"http://127.0.0.1:{closed_port}/x"), {}, 10)
        assert refused.is_error and "ConnectError" in refused.text
        unfilled = await small.run(http_tool(upstream.url + "/items/{id}"), {}, 10)
        assert unfilled.is_error and "cannot build the URL" in unfilled.text
    finally:
        await small.close()


async def test_a_runner_that_answers_before_starting_still_reports_the_start(
    tmp_path: Path,
) -> None:
    """The executor learns from ``on_start`` that a call began; a runner that refuses before
    starting anything (e.g. a program it may not copy into the sandbox) must not leave the
    job waiting for a start that never comes."""

    class Refusing(CommandRunner):
        async def run_with_start_hook(self, tool, arguments, timeout_s, on_start, on_progress=None):
            return Response.error("refused before starting")

    runner = ToolRunner(Settings(data_dir=tmp_path), WorkerPool(1))
    runner.command = Refusing()
    starts: list[str] = []

    async def on_start() -> None:
        starts.append("started")

    tool = command_tool(["/bin/true"])
    response = await runner.run(tool, {}, 5, on_start=on_start)
    assert response.text == "refused before starting"
    assert starts == ["started"]
