"""Auto-discovery of functions in packages and folders."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from toolrun.errors import InvalidDefinition, NotExecutable
from toolrun.registry.discovery import (
    SOURCE_FOLDER,
    discover,
    load_callable,
    mount_folder,
    package_name_for_folder,
)
from toolrun.registry.registry import Registry
from toolrun.registry.runtimes import PythonRuntime
from toolrun.registry.tool import Tool

FIXTURES = Path(__file__).parent / "fixtures"
FOLDER = FIXTURES / "tool_folder"


def by_id(tools: list[Tool]) -> dict[str, Tool]:
    return {f"{t.namespace}/{t.id}": t for t in tools}


def test_folder_discovery() -> None:
    tools = by_id(discover(FOLDER))
    assert sorted(tools) == [
        "mathy/add",
        "mathy/double:v1.0.0-stable",
        "utilities/compress_files",
    ]
    compress = tools["utilities/compress_files"]
    assert compress.description == "Compress all files in a directory into a zip archive."
    assert compress.input_schema["properties"]["directory"] == {
        "type": "string",
        "description": "Path to directory containing files to compress",
    }
    package = package_name_for_folder(FOLDER)
    assert compress.runtime == PythonRuntime(target=f"{package}.utilities:compress_files")
    assert compress.metadata == {SOURCE_FOLDER: str(FOLDER.resolve())}
    double = tools["mathy/double:v1.0.0-stable"]
    assert double.tags == ["math"]  # the @tool options are kept
    assert load_callable(tools["mathy/add"])(a=2) == 3


def test_folder_name_is_stable_and_mount_is_idempotent(tmp_path: Path) -> None:
    name = package_name_for_folder(FOLDER)
    assert name == package_name_for_folder(str(FOLDER) + "/")
    assert name.startswith("toolrun_ext_tool_folder_")
    assert mount_folder(FOLDER) == mount_folder(FOLDER) == name
    assert package_name_for_folder(tmp_path) != name
    with pytest.raises(InvalidDefinition, match="is not a folder"):
        mount_folder(tmp_path / "missing")


def test_single_file_and_string_paths() -> None:
    tools = discover(str(FOLDER / "utilities.py"))
    assert [(t.namespace, t.name) for t in tools] == [("utilities", "compress_files")]
    assert len(discover(str(FOLDER))) == 3


def test_package_discovery(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES))
    tools = by_id(discover("toolrun_fixture_pkg"))
    assert sorted(tools) == [
        "sub.geo/distance_km",
        "toolrun_fixture_pkg/ping",
        "weather/weather_lookup",
    ]
    weather = tools["weather/weather_lookup"]
    assert weather.runtime == PythonRuntime(target="toolrun_fixture_pkg.weather:weather_lookup")
    assert weather.input_schema["properties"]["unit"] == {
        "type": "string",
        "enum": ["C", "F"],
        "default": "C",
        "description": "Temperature unit.",
    }
    assert SOURCE_FOLDER not in weather.metadata
    assert [t.name for t in discover("toolrun_fixture_pkg.weather")] == ["weather_lookup"]


def test_discovered_tools_register_and_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES))
    registry = Registry()
    for found in discover("toolrun_fixture_pkg") + discover(FOLDER):
        registry.register(found)  # no callable: imported from the runtime target
    assert "sub_geo_distance_km" in registry
    response = registry.execute_function_call("weather_weather_lookup", {"city": "Delhi"})
    assert response.structured == {"temperature": 28, "unit": "C"}
    assert registry.execute_function_call("mathy_add", {"a": 1, "b": 2}).structured == {"result": 3}


def test_a_fresh_worker_process_can_import_folder_tools(tmp_path: Path) -> None:
    add = next(t for t in discover(FOLDER) if t.name == "add")
    worker = textwrap.dedent(
        """
        import json, sys
        from toolrun.registry.discovery import load_callable
        from toolrun.registry.tool import Tool

        tool = Tool.model_validate_json(sys.stdin.read())
        print(json.dumps(load_callable(tool)(a=2, b=3)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", worker],
        input=add.model_dump_json(),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == 5


def test_discovery_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidDefinition, match=r"cannot import .*broken.*RuntimeError"):
        discover(FIXTURES / "broken_folder")
    with pytest.raises(InvalidDefinition, match="cannot import 'no_such_package_xyz'"):
        discover("no_such_package_xyz")
    with pytest.raises(InvalidDefinition, match=r"neither a folder nor a \.py file"):
        discover(tmp_path / "missing")
    with pytest.raises(InvalidDefinition, match=r"neither a folder nor a \.py file"):
        discover(f"{tmp_path}/missing")  # a string with a separator is a path, not a module
    with pytest.raises(NotExecutable, match="no Python runtime"):
        load_callable(Tool(name="f"))
    with pytest.raises(NotExecutable, match="cannot import"):
        load_callable(Tool(name="f", runtime=PythonRuntime(target="no_such_module_xyz:f")))


def test_two_modules_with_the_same_function_name_are_refused(tmp_path: Path) -> None:
    (tmp_path / "first.py").write_text("def run(x: int) -> int:\n    return x\n")
    (tmp_path / "second.py").write_text("def run(x: int) -> int:\n    return -x\n")
    with pytest.raises(InvalidDefinition, match="share the id 'run'"):
        discover(tmp_path)
