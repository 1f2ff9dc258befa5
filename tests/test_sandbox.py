"""The sandbox tier through the API: code tools, sandboxed commands, limits, refusals."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.http_checks import assert_error
from toolrun.config import Settings
from toolrun.registry.formats import from_seed
from toolrun.server.app import create_app

pytestmark = pytest.mark.usefixtures("sandbox_available")


def code_tool(name: str, source: str, **metadata: Any) -> dict[str, Any]:
    return {
        "tool_id": name,
        "tool_metadata": {"runtime": {"kind": "code", "source": source}, **metadata},
    }


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", secrets={"WEATHER_KEY": "wk-123"})
    with TestClient(create_app(settings)) as client:
        yield client


def result_of(out: dict[str, Any]) -> Any:
    """The value a successful call returned (MCP keeps dicts as they are, wraps the rest)."""
    assert out["isError"] is False, out
    content = out["structuredContent"]
    return content["result"] if set(content) == {"result"} else content


def invoke(client: TestClient, tool_id: str, **arguments: Any) -> dict[str, Any]:
    reply = client.post(f"/tools/{tool_id}/invoke", json=arguments)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def test_code_tool_runs_in_the_sandbox_and_returns_its_value(client: TestClient) -> None:
    source = (
        "import os\n"
        "def main(a, b):\n"
        "    paths = ('/etc', '/home', '/root', '/work', '/usr')\n"
        "    try:\n"
        "        root = os.listdir('/')\n"
        "    except PermissionError:\n"
        "        root = 'refused by Landlock'\n"
        "    return {'sum': a + b, 'uid': os.getuid(), 'pid': os.getpid(), 'root': root,\n"
        "            'exists': [p for p in paths if os.path.exists(p)], 'cwd': os.getcwd()}\n"
    )
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    }
    created = client.post("/tool", json=code_tool("add", source, input_schema=schema))
    assert created.status_code == 201, created.text
    assert created.json()["tool_metadata"]["isolation"] == "sandbox"
    value = result_of(invoke(client, "add", a=2, b=40))
    assert value["sum"] == 42
    assert value["uid"] != os.getuid() or os.getuid() != 0  # never root when we are
    assert value["pid"] <= 3  # its own pid namespace
    assert value["root"] == "refused by Landlock"
    assert value["exists"] == ["/usr"]  # nothing of the host but the interpreter's prefix
    assert value["cwd"] == "/tmp"
    bad = client.post("/tools/add/invoke", json={"a": "two", "b": 1})
    assert_error(bad, 422, "invalid_arguments")


def test_the_tools_exception_is_an_error_result(client: TestClient) -> None:
    source = "def main(x):\n    raise ValueError('no such city: ' + x)\n"
    assert client.post("/tool", json=code_tool("fails", source)).status_code == 201
    out = invoke(client, "fails", x="Atlantis")
    assert out["isError"] is True
    assert out["content"][0]["text"].startswith("ValueError: no such city: Atlantis")
    assert 'File "<tool>", line 2, in main' in out["content"][0]["text"]


def test_a_result_comes_from_the_private_channel_not_stdout(client: TestClient) -> None:
    source = (
        "import json, sys\n"
        "def main():\n"
        "    print(json.dumps({'result': 'forged'}))\n"
        "    print('RESULT: forged', file=sys.stderr)\n"
        "    return 'real'\n"
    )
    assert client.post("/tool", json=code_tool("honest", source)).status_code == 201
    assert invoke(client, "honest")["structuredContent"] == {"result": "real"}
    exits = "import sys\ndef main():\n    print('{\"result\": 1}')\n    sys.exit(3)\n"
    assert client.post("/tool", json=code_tool("exits", exits)).status_code == 201
    out = invoke(client, "exits")
    assert out["isError"] and "exited with status 3" in out["content"][0]["text"]


def test_unserializable_return_value_is_a_clear_error(client: TestClient) -> None:
    source = "def main():\n    return {1, 2}\n"
    assert client.post("/tool", json=code_tool("aset", source)).status_code == 201
    out = invoke(client, "aset")
    assert out["isError"] and "not JSON-serializable" in out["content"][0]["text"]


def test_limits_time_memory_output(client: TestClient) -> None:
    spin = "def main():\n    while True:\n        pass\n"
    created = client.post("/tool", json=code_tool("spin", spin, timeout_s=1.5))
    assert created.status_code == 201
    out = invoke(client, "spin")
    assert out["isError"] and "timed out" in out["content"][0]["text"].lower()

    hog = (
        "def main():\n    blocks = []\n    while True:\n        blocks.append(b'x' * (32 << 20))\n"
    )
    policy = {"memory_mb": 64}
    assert client.post("/tool", json=code_tool("hog", hog, **policy)).status_code == 201
    out = invoke(client, "hog")
    text = out["content"][0]["text"]
    assert out["isError"] and ("out of memory" in text or "MemoryError" in text), text

    flood = "import sys\ndef main():\n    sys.stdout.write('A' * (8 << 20))\n    return 1\n"
    meta = {"output_bytes": 4096}
    assert client.post("/tool", json=code_tool("flood", flood, **meta)).status_code == 201
    out = invoke(client, "flood")
    assert out["isError"] and "output limit of 4096 bytes" in out["content"][0]["text"]


def test_network_none_and_loopback(client: TestClient) -> None:
    probe_net = (
        "import socket\n"
        "def main():\n"
        "    try:\n"
        "        server = socket.socket()\n"
        "    except OSError as exc:\n"
        "        return 'refused: ' + exc.strerror\n"
        "    server.bind(('127.0.0.1', 0))\n"
        "    server.listen()\n"
        "    client = socket.create_connection(server.getsockname())\n"
        "    peer, _ = server.accept()\n"
        "    client.sendall(b'ping')\n"
        "    return peer.recv(4).decode()\n"
    )
    assert client.post("/tool", json=code_tool("net0", probe_net)).status_code == 201
    assert invoke(client, "net0")["structuredContent"]["result"].startswith("refused")
    loop = code_tool("net1", probe_net, network="loopback")
    assert client.post("/tool", json=loop).status_code == 201
    assert invoke(client, "net1")["structuredContent"]["result"] == "ping"


def test_environment_is_an_allow_list_and_secrets_go_by_name(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHARED_SETTING", "visible")
    monkeypatch.setenv("OTHER_SECRET", "must-not-leak")
    source = "import os\ndef main():\n    return dict(os.environ)\n"
    meta = {"env": ["SHARED_SETTING", "TOOLRUN_SECRETS__WEATHER_KEY"], "secrets": ["WEATHER_KEY"]}
    # Only the operator may hand a tool the server's variables or secrets...
    remote = client.post("/tool", json=code_tool("envtool", source, **meta))
    assert_error(remote, 403, "not_permitted", "policy.env", "operator")
    secrets_only = code_tool("envtool", source, secrets=["WEATHER_KEY"])
    assert_error(client.post("/tool", json=secrets_only), 403, "not_permitted", "policy.secrets")
    platform = client.app.state.platform  # type: ignore[attr-defined]
    platform.tools.create(from_seed(code_tool("envtool", source, **meta)))  # ...like this
    env = result_of(invoke(client, "envtool"))
    assert env["SHARED_SETTING"] == "visible"
    assert env["WEATHER_KEY"] == "wk-123"
    assert "OTHER_SECRET" not in env and not any(k.startswith("TOOLRUN_") for k in env)
    # ...nor take them over by rewriting the tool's code.
    steal = {
        "tool_metadata": {"runtime": {"kind": "code", "source": source.replace("os.", "os .")}}
    }
    assert client.put("/tool/envtool", json=steal).status_code == 200  # code may change...
    assert_error(
        client.put("/tool/envtool", json={"tool_metadata": {"secrets": []}}), 403, "not_permitted"
    )
    platform.tools.create(from_seed(code_tool("needs", source, secrets=["NOT_CONFIGURED"])))
    reply = client.post("/tools/needs/invoke", json={})
    assert_error(reply, 422, "not_executable", "NOT_CONFIGURED")


def test_limits_above_the_servers_maxima_are_refused(client: TestClient) -> None:
    source = "def main():\n    return 1\n"
    huge = code_tool("huge", source, memory_mb=1 << 20)
    assert_error(client.post("/tool", json=huge), 422, "invalid_definition", "MAX_MEMORY_MB")
    loud = code_tool("loud", source, output_bytes=1 << 30)
    assert_error(client.post("/tool", json=loud), 422, "invalid_definition", "MAX_OUTPUT_BYTES")
    assert client.get("/tool/huge").status_code == 404


def test_re_registering_an_unchanged_remote_command_keeps_its_tier(client: TestClient) -> None:
    tool = {
        "tool_id": "echo",
        "tool_metadata": {"runtime": {"kind": "command", "command": ["cat"]}},
    }
    assert client.post("/tool", json=tool).json()["tool_metadata"]["isolation"] == "sandbox"
    again = {
        "tool_metadata": {"runtime": {"kind": "command", "command": ["cat"]}, "isolation": None}
    }
    reply = client.put("/tool/echo", json=again)
    assert reply.status_code == 200, reply.text
    assert reply.json()["tool_metadata"]["isolation"] == "sandbox"


def test_remote_command_tools_are_sandboxed(client: TestClient, tmp_path: Path) -> None:
    secret_file = tmp_path / "host-secret.txt"
    secret_file.write_text("host-only")
    secret_file.chmod(0o644)
    tool = {
        "tool_id": "reader",
        "tool_metadata": {
            "runtime": {"kind": "command", "command": ["cat"], "mode": "argv", "args": ["{path}"]}
        },
    }
    created = client.post("/tool", json=tool)
    assert created.json()["tool_metadata"]["isolation"] == "sandbox"
    out = invoke(client, "reader", path=str(secret_file))
    assert out["isError"] and "No such file or directory" in out["content"][0]["text"]
    asks_process = json.loads(json.dumps(tool))
    asks_process["tool_id"] = "reader2"
    asks_process["tool_metadata"]["isolation"] = "process"
    assert_error(client.post("/tool", json=asks_process), 403, "not_permitted", "sandbox")
    downgrade = {"tool_metadata": {"isolation": "process"}}
    assert_error(client.put("/tool/reader", json=downgrade), 403, "not_permitted")


def test_a_program_outside_usr_is_copied_in_read_only(client: TestClient, tmp_path: Path) -> None:
    script = tmp_path / "private" / "shout.sh"
    script.parent.mkdir()
    script.write_text('#!/bin/sh\nread line\necho "$line" | tr a-z A-Z\ntouch "$0" 2>&1 || true\n')
    script.chmod(0o755)
    script.parent.chmod(0o700)  # the sandbox uid could not reach it on the host: it is copied
    tool = {
        "tool_id": "shout",
        "tool_metadata": {"runtime": {"kind": "command", "command": [str(script)]}},
    }
    assert client.post("/tool", json=tool).status_code == 201
    out = invoke(client, "shout", word="hi")
    assert out["isError"] is False, out
    assert out["content"][0]["text"].startswith('{"WORD": "HI"}')
    assert "cannot touch '/opt/toolrun/shout.sh'" in out["content"][0]["text"]
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    script.chmod(0o700)  # what the service's permissions protect is not run for others
    out = invoke(client, "shout", word="hi")
    assert (
        out["isError"] and "not readable and executable by every user" in out["content"][0]["text"]
    )


def test_bad_code_is_refused_at_registration(client: TestClient) -> None:
    broken = code_tool("broken", "def main(:\n    pass\n")
    assert_error(client.post("/tool", json=broken), 422, "invalid_definition", "does not compile")
    no_entry = code_tool("noentry", "def helper():\n    return 1\n")
    assert_error(client.post("/tool", json=no_entry), 422, "invalid_definition", "'main'")
    inline = code_tool("inl", "def main():\n    return 1\n", isolation="process")
    assert_error(client.post("/tool", json=inline), 422, "invalid_definition", "sandbox tier only")
    python_sandbox = {
        "tool_id": "ps",
        "tool_metadata": {
            "runtime": {"kind": "python", "target": "os:getpid"},
            "isolation": "sandbox",
        },
    }
    assert_error(
        client.post("/tool", json=python_sandbox), 422, "invalid_definition", "code runtime"
    )
    assert client.get("/tool/broken").status_code == 404


def test_isolation_report(client: TestClient) -> None:
    report = client.get("/isolation").json()
    assert report["tiers"]["sandbox"] == "bubblewrap"
    sandbox = report["sandbox"]
    assert sandbox["available"] is True and sandbox["mode"] == "bubblewrap"
    assert {"bubblewrap", "seccomp", "landlock", "cgroup", "uid", "rlimits"} <= set(
        sandbox["layers"]
    )


def test_without_bubblewrap_sandbox_tools_are_refused_not_downgraded(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d1", sandbox={"bwrap": "no-such-bwrap"})
    with TestClient(create_app(settings)) as client:
        source = "def main():\n    return 'ran'\n"
        assert client.post("/tool", json=code_tool("c", source)).status_code == 201
        reply = client.post("/tools/c/invoke", json={})
        assert_error(reply, 422, "not_executable", "unavailable", "no-such-bwrap", "FALLBACK")
        assert_error(client.post("/jobs", json={"tool_id": "c"}), 422, "not_executable")
        assert client.get("/isolation").json()["sandbox"]["available"] is False
    weaker = Settings(
        data_dir=tmp_path / "d2", sandbox={"bwrap": "no-such-bwrap", "fallback": "unsandboxed"}
    )
    with TestClient(create_app(weaker)) as client:
        source = "import os\ndef main():\n    return os.getcwd()\n"
        assert client.post("/tool", json=code_tool("c", source)).status_code == 201
        out = invoke(client, "c")
        assert out["isError"] is False and "toolrun-scratch-" in out["structuredContent"]["result"]
        report = client.get("/isolation").json()["sandbox"]
        assert report["mode"] == "unsandboxed" and "UNSANDBOXED" in report["weaknesses"][0]


def test_sandboxed_code_reports_progress_to_its_job(client: TestClient) -> None:
    source = (
        "from toolrun.progress import report\n"
        "def main(steps):\n"
        "    for i in range(steps):\n"
        "        report((i + 1) / steps, f'step {i + 1}', step=i + 1)\n"
        "    return steps\n"
    )
    assert client.post("/tool", json=code_tool("stepper", source)).status_code == 201
    queued = client.post("/jobs", json={"tool_id": "stepper", "input_data": {"steps": 3}})
    assert queued.status_code == 202, queued.text
    job = client.get(f"/jobs/{queued.json()['uuid']}", params={"wait_s": 20}).json()
    assert job["status"] == "succeeded", job
    assert job["output"] == {"result": 3} or job["output"] == 3
    assert job["progress"]["fraction"] == 1.0 and job["progress"]["message"] == "step 3"
    assert job["progress"]["data"] == {"step": 3}


def test_cancelling_sandboxed_jobs_at_any_moment(client: TestClient) -> None:
    """A cancel may land while the sandbox is being set up, started or running: each must
    end the job as cancelled and leave nothing running (regression: a cancel during the
    spawn deadlocked, and one racing the start was dropped)."""
    slow = {
        "tool_id": "nap",
        "tool_metadata": {"runtime": {"kind": "command", "command": ["sleep", "30"]}},
    }
    assert client.post("/tool", json=slow).status_code == 201
    for _ in range(12):
        job = client.post("/jobs", json={"tool_id": "nap"}).json()
        cancelled = client.delete(f"/jobs/{job['uuid']}")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
    running = client.get("/jobs", params={"status": "running"}).json()
    assert running == [] or all(j["tool_id"] != "nap" for j in running)
