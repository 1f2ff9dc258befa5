"""``container`` tools: a clear refusal where no engine runs, and the engine's command line.

This machine has a docker client but no engine, so the call path is exercised with a stand-in
engine (a script named ``docker`` on PATH) that answers ``version`` and records ``run``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.http_checks import assert_error
from toolrun.config import Settings
from toolrun.server.app import create_app

IMAGE_TOOL = {
    "tool_id": "box",
    "tool_metadata": {
        "runtime": {"kind": "container", "image": "example/echo:1", "command": ["serve"]},
        "memory_mb": 128,
    },
}

FAKE_ENGINE = """#!/bin/sh
if [ "$1" = version ]; then echo 99.0; exit 0; fi
if [ "$1" = rm ]; then echo "$@" >> "$(dirname "$0")/removed"; exit 0; fi
printf '%s\\n' "$@" > "$(dirname "$0")/argv"
input=$(cat)
printf '{"engine_saw": %s}' "$input"
"""


def client_for(tmp_path: Path, engine: str) -> TestClient:
    settings = Settings(data_dir=tmp_path / "data", sandbox={"container_engine": engine})
    return TestClient(create_app(settings))


def test_no_engine_is_a_clear_error(tmp_path: Path) -> None:
    with client_for(tmp_path, "no-such-engine") as client:
        assert client.post("/tool", json=IMAGE_TOOL).status_code == 201
        reply = client.post("/tools/box/invoke", json={})
        assert_error(reply, 422, "not_executable", "no container engine", "not installed")


def test_a_client_without_an_engine_is_reported(tmp_path: Path) -> None:
    engine = tmp_path / "bin" / "docker"
    engine.parent.mkdir()
    engine.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    engine.chmod(0o755)
    with client_for(tmp_path, str(engine)) as client:
        assert client.post("/tool", json=IMAGE_TOOL).status_code == 201
        reply = client.post("/tools/box/invoke", json={})
        assert_error(reply, 422, "not_executable", "engine does not answer", "Cannot connect")


@pytest.fixture
def fake_engine(tmp_path: Path) -> Iterator[Path]:
    engine = tmp_path / "bin" / "docker"
    engine.parent.mkdir()
    engine.write_text(FAKE_ENGINE)
    engine.chmod(0o755)
    yield engine


def test_container_call_runs_locked_down(tmp_path: Path, fake_engine: Path) -> None:
    with client_for(tmp_path, str(fake_engine)) as client:
        assert client.post("/tool", json=IMAGE_TOOL).status_code == 201
        reply = client.post("/tools/box/invoke", json={"city": "Paris"})
        assert reply.status_code == 200, reply.text
        assert reply.json()["structuredContent"] == {"engine_saw": {"city": "Paris"}}
    argv = (fake_engine.parent / "argv").read_text().split("\n")
    assert argv[0] == "run" and "--rm" in argv
    for flag, value in [
        ("--network", "none"),
        ("--cap-drop", "ALL"),
        ("--security-opt", "no-new-privileges"),
        ("--memory", "128m"),
        ("--memory-swap", "128m"),
        ("--pull", "never"),
        ("--pids-limit", "64"),
    ]:
        assert argv[argv.index(flag) + 1] == value
    assert "--read-only" in argv
    assert argv[-3:-1] == ["example/echo:1", "serve"]
    name = argv[argv.index("--name") + 1]
    assert name in (fake_engine.parent / "removed").read_text()  # removed after the call


def test_bad_image_names_are_refused(tmp_path: Path, fake_engine: Path) -> None:
    with client_for(tmp_path, str(fake_engine)) as client:
        bad = json.loads(json.dumps(IMAGE_TOOL))
        bad["tool_metadata"]["runtime"]["image"] = "--privileged"
        assert_error(client.post("/tool", json=bad), 422, "invalid_definition", "image")
    assert not os.path.exists(fake_engine.parent / "argv")
