"""Generated code: seed 000's template, arguments as literals, hostile values stay data."""

from __future__ import annotations

import ast
import subprocess
import sys
from typing import Any

import pytest

from toolrun.demo import functions
from toolrun.demo.catalog import binary_increment_tool
from toolrun.nl.codegen import generate_code
from toolrun.nl.extract import extract_arguments
from toolrun.registry.decorators import tool_from_callable

WEATHER = tool_from_callable(functions.weather_lookup)
HOSTILE = [
    'Paris"); __import__("os").system("echo pwned") #',
    "Paris'''\nimport os\nos.system('echo pwned')\n'''",
    'x"""; __import__("os")._exit(3); """',
    "back\\slash\\\\ and \\n escapes\\",
    "new\nline\r\nand\ttab",
    "unicode ✓ Zürich 東京 \u202e reversed \x00 nul",
    "{city}{0!r}%s f'{__import__(\"os\")}'",
]


def calls(code: str) -> list[ast.Call]:
    return [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Call)]


def test_the_seed_template_with_the_arguments() -> None:
    code = generate_code(WEATHER, {"city": "Paris", "unit": "C"})
    assert code.startswith("from toolrun.demo.functions import weather_lookup\n")
    assert "weather_lookup(city='Paris', unit='C')" in code
    assert "Function executed successfully with no return value." in code
    assert "if __name__ == '__main__':" in code


def test_the_generated_code_runs() -> None:
    code = generate_code(WEATHER, {"city": "Paris", "unit": "F"})
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "Result: {'temperature': 57, 'unit': 'F'}"


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_stay_string_literals(value: str) -> None:
    code = generate_code(WEATHER, {"city": value})
    tree = ast.parse(code)
    call = next(
        c for c in calls(code) if isinstance(c.func, ast.Name) and c.func.id == "weather_lookup"
    )
    assert isinstance(call.keywords[0].value, ast.Constant)
    assert call.keywords[0].value.value == value
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert "__import__" not in names and "os" not in names
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert len(imports) == 1


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_prompts_end_to_end(value: str) -> None:
    prompt = f'weather in city "{value}"'
    found = extract_arguments(prompt, WEATHER.input_schema)
    code = generate_code(WEATHER, found.arguments)
    ast.parse(code)
    assert (
        len([n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Import | ast.ImportFrom)])
        == 1
    )


def test_nested_values_and_odd_names() -> None:
    arguments: dict[str, Any] = {
        "items": [1, 2.5, None, True, {"k": ["v"]}],
        "class": "keyword",
        "not an identifier": "x",
    }
    code = generate_code(WEATHER, arguments)
    call = next(
        c for c in calls(code) if isinstance(c.func, ast.Name) and c.func.id == "weather_lookup"
    )
    assert [k.arg for k in call.keywords] == ["items", None]
    assert ast.literal_eval(call.keywords[0].value) == arguments["items"]
    assert ast.literal_eval(call.keywords[1].value) == {
        "class": "keyword",
        "not an identifier": "x",
    }


def test_a_tool_that_is_not_a_python_function_is_called_through_the_server() -> None:
    tool = binary_increment_tool()
    code = generate_code(tool, {"value": 41})
    assert "from toolrun.nl.client import call" in code
    assert "call('binary-increment-tool', arguments={'value': 41})" in code
