"""Seed 000's generated script: import the function, call it, print the result.

The call is built as an :mod:`ast` tree whose arguments are ``ast.Constant``/``ast.List``/
``ast.Dict`` nodes and unparsed with :func:`ast.unparse`, so no text from a prompt is ever
pasted into code: a hostile value is a string literal and nothing else. The result is parsed
again before it is returned.
"""

from __future__ import annotations

import ast
import keyword
from collections.abc import Mapping
from typing import Any

from toolrun.registry.tool import Tool

# The seed's template around the call (``CALL`` and the import are replaced by AST nodes).
_TEMPLATE = """\
def main():
    try:
        result = CALL
        if result is None:
            print("Function executed successfully with no return value.")
        elif isinstance(result, bool):
            status = "successfully" if result else "with issues"
            print(f"Function executed {status}.")
        else:
            print(f"Result: {result}")
    except Exception as e:
        print(f"Error executing function: {e}")


if __name__ == "__main__":
    main()
"""


def literal(value: Any) -> ast.expr:
    """A JSON value as an expression node built only of literals."""
    if value is None or isinstance(value, bool | int | float | str):
        if isinstance(value, float) and value != value:  # NaN has no literal
            return ast.Call(ast.Name("float", ast.Load()), [ast.Constant("nan")], [])
        return ast.Constant(value)
    if isinstance(value, list | tuple):
        return ast.List([literal(v) for v in value], ast.Load())
    if isinstance(value, Mapping):
        return ast.Dict([ast.Constant(str(k)) for k in value], [literal(v) for v in value.values()])
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _identifier(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name) and name.isascii()


def import_target(tool: Tool) -> tuple[str, str] | None:
    """``(module, attribute)`` of a python tool whose target is a plain module function."""
    runtime = tool.runtime
    target = getattr(runtime, "target", None) if runtime is not None else None
    if getattr(runtime, "kind", None) != "python" or not isinstance(target, str):
        return None
    module, _, attr = target.partition(":")
    if not attr or "." in attr or not all(_identifier(p) for p in [*module.split("."), attr]):
        return None
    return module, attr


def call_node(func: ast.expr, arguments: Mapping[str, Any]) -> ast.Call:
    """``func(name=value, ...)``; names that are not identifiers go through ``**{...}``."""
    keywords = [ast.keyword(k, literal(v)) for k, v in arguments.items() if _identifier(k)]
    odd = {k: v for k, v in arguments.items() if not _identifier(k)}
    if odd:
        keywords.append(ast.keyword(None, literal(odd)))
    return ast.Call(func, [], keywords)


def generate_code(tool: Tool, arguments: Mapping[str, Any]) -> str:
    """The script calling ``tool`` with ``arguments``: a direct import for a python tool,
    else ``toolrun.nl.client.call(tool_id, ...)`` (the same call through the platform)."""
    target = import_target(tool)
    if target is not None:
        module, attr = target
        head: ast.stmt = ast.ImportFrom(module, [ast.alias(attr)], 0)
        call = call_node(ast.Name(attr, ast.Load()), arguments)
    else:
        head = ast.ImportFrom("toolrun.nl.client", [ast.alias("call")], 0)
        call = call_node(ast.Name("call", ast.Load()), {})
        call.args = [ast.Constant(tool.id)]
        call.keywords = [ast.keyword("arguments", literal(dict(arguments)))]
    body = ast.parse(_TEMPLATE)
    main = body.body[0]
    assert isinstance(main, ast.FunctionDef) and isinstance(main.body[0], ast.Try)
    assign = main.body[0].body[0]
    assert isinstance(assign, ast.Assign)
    assign.value = call
    module_node = ast.Module([head, *body.body], [])
    code = ast.unparse(ast.fix_missing_locations(module_node)) + "\n"
    ast.parse(code)  # never hand out code that does not parse
    return code
