"""The README cannot go stale: its curl, WebSocket and library snippets run here against a
real server, the error example must match what the server says, and the configuration table
must match Settings."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.cluster import EXECUTORS, served
from tests.conftest import require_sandbox
from tests.servers import RunningServer
from toolrun.config import settings_table

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

pytestmark = pytest.mark.e2e


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def curl_blocks() -> list[str]:
    return [b for b in blocks("bash") if b.lstrip().startswith("curl")]


def test_configuration_table_is_generated_from_settings() -> None:
    assert settings_table() in README


@pytest.fixture(scope="module", params=EXECUTORS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The embedded default, and two API processes with two Celery workers."""
    with served(request.param, tmp_path_factory.mktemp("readme")) as running:
        yield running


def local(text: str, server: RunningServer) -> str:
    text = text.replace("localhost:8000", f"127.0.0.1:{server.port}")
    return text.replace("localhost:8765", f"127.0.0.1:{server.ws_port}")


def test_curl_snippets_run_in_order(server: RunningServer) -> None:
    require_sandbox()  # the tour registers and calls a code tool
    snippets = curl_blocks()
    assert len(snippets) >= 15
    outputs = []
    for snippet in snippets:
        done = subprocess.run(
            ["bash", "-c", local(snippet, server).replace("curl ", "curl -sS ", 1)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, (snippet, done.stderr)
        outputs.append((snippet, json.loads(done.stdout)))
    for snippet, body in outputs[:-1]:
        assert not (isinstance(body, dict) and isinstance(body.get("error"), dict)), snippet
    by_call = {s.splitlines()[0]: b for s, b in outputs}
    word_count = next(b for s, b in outputs if "word-count/invoke" in s)
    assert word_count["structuredContent"] == {"result": 3}
    delhi = next(b for s, b in outputs if "weather_lookup/invoke" in s)
    assert delhi["structuredContent"] == {"temperature": 28, "unit": "C"}
    executed = next(b for s, b in outputs if "/execute" in s)
    assert executed["status"] == "executed" and executed["function"].startswith("weather_lookup")
    assert executed["arguments"]["city"] == "Delhi"
    assert executed["execution_result"]["structuredContent"] == {"temperature": 28, "unit": "C"}
    assert executed["output"].startswith("Result: ")  # what the generated code printed
    assert ast.literal_eval(executed["output"][8:]) == {"temperature": 28, "unit": "C"}
    action = next(b for s, b in outputs if "/actions" in s)
    assert action["status"] == "ok" and action["output"] == "Delhi 28 29\n", action
    assert len({call["job_id"] for call in action["calls"]}) == 4
    compared = next(b for s, b in outputs if "weather_compare/invoke" in s)["structuredContent"]
    assert {k: compared[k] for k in ("temperature", "paris", "one_degree_warmer")} == {
        "temperature": 28,
        "paris": 14,
        "one_degree_warmer": 29,
    }
    fib = next(b for s, b in outputs if "fib/invoke" in s)
    assert fib["structuredContent"] == {"result": 12586269025}
    isolation = next(b for s, b in outputs if s.startswith("curl http://localhost:8000/isolation"))
    assert isolation["sandbox"]["available"] is True
    registered = next(b for s, b in outputs if "/tool/register/" in s)
    assert registered["tool_id"] == "binary-increment-tool"
    assert by_call["curl http://localhost:8000/function/weather_lookup:latest"]["function_id"] == (
        "weather_lookup:v2.0.0-beta"
    )
    # The last snippet is the documented bad-input example: the README shows its exact answer.
    shown = json.loads(blocks("json")[-1])
    assert outputs[-1][1] == shown


def test_websocket_snippet_prints_the_documented_messages(server: RunningServer) -> None:
    snippet = next(b for b in blocks("python") if "websockets.connect" in b)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(local(snippet, server), "README", "exec"), {"__name__": "readme"})
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Response: {'success': True, 'uuid': ")
    assert lines[-1].endswith("'output': {'result': 6}}")


def test_library_snippet() -> None:
    snippet = next(b for b in blocks("python") if "Registry()" in b)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(snippet, "README", "exec"), {"__name__": "readme"})
    names, ordered, invalid = out.getvalue().splitlines()
    assert "math_add" in names and "delivery_orderProduct" in names
    assert "Ordered 2 x Pizza" in ordered and "'isError': False" in ordered
    assert invalid == "True"
