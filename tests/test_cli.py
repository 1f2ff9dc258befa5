"""The ``toolrun`` command against a data directory (no server): register, ls, show, call,
jobs; every error one readable line and a non-zero exit status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from toolrun.cli.main import app

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, [*args, "--data-dir", str(tmp_path / "data")])
        return result.exit_code, result.stdout, result.stderr

    return invoke


def test_register_list_show_call_jobs(run) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run("register", str(ROOT / "examples" / "tool.json"))
    assert code == 0 and out.strip() == "registered word-count"
    code, out, _ = run("register", "toolrun.demo.functions:increment")
    assert code == 0 and out.strip() == "registered increment"

    code, out, _ = run("ls")
    assert code == 0 and {line.split()[0] for line in out.splitlines()} == {
        "increment",
        "word-count",
    }
    code, out, _ = run("ls", "--filter", '{"tags": "text"}')
    assert [line.split()[0] for line in out.splitlines()] == ["word-count"]

    code, out, _ = run("show", "increment")
    assert code == 0 and json.loads(out)["runtime"]["target"] == "toolrun.demo.functions:increment"

    code, out, _ = run("call", "word-count", "text=one two")
    assert code == 0 and json.loads(out)["structuredContent"] == {"result": 2}
    code, out, _ = run("call", "increment", "--json", '{"value": 41}')
    assert code == 0 and json.loads(out)["structuredContent"] == {"result": 42}

    code, out, _ = run("jobs")
    assert code == 0 and len(out.splitlines()) == 2 and "succeeded" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("call", "nope"), "Tool not registered: nope"),
        (("ls", "--filter", '{"tags": {"$bogus": 1}}'), "$bogus"),
        (("ls", "--filter", "{not json"), "not JSON"),
        (("register", "missing.json"), "no such file"),
        (("register", "no_such_module_xyz:f"), "cannot import"),
        (("call", "increment", "oops"), "not key=value"),
    ],
)
def test_errors_are_one_line(run, args: tuple[str, ...], needle: str) -> None:  # type: ignore[no-untyped-def]
    run("register", "toolrun.demo.functions:increment")
    code, _, err = run(*args)
    assert code == 1
    assert err.startswith("error: ") and needle in err and err.count("\n") == 1, err


def test_a_failing_tool_exits_1_with_its_result(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = {
        "name": "fails",
        "runtime": {"kind": "command", "command": ["sh", "-c", "echo boom >&2; exit 3"]},
    }
    (tmp_path / "fails.json").write_text(json.dumps(spec))
    assert run("register", str(tmp_path / "fails.json"))[0] == 0
    code, out, _ = run("call", "fails")
    result = json.loads(out)
    assert code == 1 and result["isError"] is True
    assert "boom" in result["content"][0]["text"] and "3" in result["content"][0]["text"]
