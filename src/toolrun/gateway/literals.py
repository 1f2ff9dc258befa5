"""Literal values of a parsed reply: what an argument's syntax tree stands for.

:class:`LiteralReader` turns an :mod:`ast` expression into a JSON value: constants, ``-1``,
lists, tuples, sets, dicts (``**`` included), ``true``/``null``, names assigned a literal
earlier in the reply, and generated Pydantic models built with keywords. Anything else is a
:class:`~toolrun.gateway.errors.ParseError` naming the line; nothing is ever evaluated.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

from toolrun.gateway.errors import ParseError
from toolrun.gateway.find import NAMESPACES
from toolrun.gateway.prompt import ModelSpec, render_tools
from toolrun.gateway.validate import OfferedTools

JSON_NAMES: Mapping[str, Any] = {"true": True, "false": False, "null": None}


class LiteralReader:
    """Literal values, with the names a reply assigned and the line its code starts at."""

    def __init__(self, offered: OfferedTools) -> None:
        self.offered = offered
        self.models: Mapping[str, ModelSpec] = render_tools(offered).models
        self.variables: dict[str, Any] = {}
        self.results: dict[str, str] = {}  # a name holding a call's result -> the tool
        self.base = 1

    def value(self, node: ast.expr, tool: str = "") -> Any:
        """The literal ``node`` stands for; anything that is not a literal is an error."""
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            operand = self.value(node.operand)
            if isinstance(operand, int | float) and not isinstance(operand, bool):
                return -operand if isinstance(node.op, ast.USub) else operand
        elif isinstance(node, ast.List | ast.Tuple | ast.Set):
            return [self.value(e) for e in node.elts]
        elif isinstance(node, ast.Dict):
            return self._dict(node)
        elif isinstance(node, ast.Name):
            return self._name(node, tool)
        elif isinstance(node, ast.Call) and not node.args:
            name = dotted(node.func)
            if name in self.models or name == "dict":
                return self._model(node, self.models.get(name or ""))
        elif isinstance(node, ast.JoinedStr) and all(
            isinstance(v, ast.Constant) for v in node.values
        ):
            return "".join(str(self.value(v)) for v in node.values)
        raise self.error(
            node.lineno,
            f"`{source_of(node)}` is not a literal value: use strings, numbers, True/False/None, "
            "lists or dicts",
        )

    def _constant(self, node: ast.Constant) -> Any:
        value = node.value
        if isinstance(value, float) and value in (float("inf"), float("-inf")):
            raise self.error(node.lineno, f"the number `{source_of(node)}` is out of range")
        if value is None or isinstance(value, str | int | float | bool):
            return value
        raise self.error(node.lineno, f"`{source_of(node)}` is not a JSON value")

    def _dict(self, node: ast.Dict) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in zip(node.keys, node.values, strict=True):
            item = self.value(value)
            if key is None:  # {**other}
                if not isinstance(item, dict):
                    raise self.error(node.lineno, "`**` in a dict must unpack a dict")
                result.update(item)
                continue
            name = self.value(key)
            if not isinstance(name, str):
                raise self.error(node.lineno, f"dict keys must be strings, not {name!r}")
            result[name] = item
        return result

    def _name(self, node: ast.Name, tool: str) -> Any:
        if node.id in self.variables:
            return copy_value(self.variables[node.id])
        if node.id in self.results:
            source = self.results[node.id]
            raise self.error(
                node.lineno,
                f"`{node.id}` holds the result of {source}(), which is not known until that call "
                f"has run: call {source} alone first and use its result in your next reply",
            )
        if node.id in JSON_NAMES:
            return JSON_NAMES[node.id]
        where = f" in the call of {tool}" if tool else ""
        raise self.error(
            node.lineno, f"`{node.id}`{where} is not defined; pass a literal value instead"
        )

    def _model(self, node: ast.Call, spec: ModelSpec | None) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for keyword in node.keywords:
            value = self.value(keyword.value)
            if keyword.arg is None:
                if not isinstance(value, dict):
                    raise self.error(node.lineno, "`**` must unpack a dict literal")
                result.update(value)
            else:
                result[spec.fields.get(keyword.arg, keyword.arg) if spec else keyword.arg] = value
        return result

    # -- errors

    def error(self, lineno: int, message: str) -> ParseError:
        line = self.base + lineno - 1
        return ParseError(f"line {line}: {message}", line=line)

    def syntax_error(self, error: SyntaxError) -> ParseError:
        text = (error.text or "").strip()
        shown = f": `{text[:80]}`" if text else ""
        return self.error(
            error.lineno or 1, f"invalid Python in the tool call ({error.msg}){shown}"
        )


def dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return None


def strip_namespace(name: str) -> str:
    base, _, attr = name.partition(".")
    return attr if attr and base in NAMESPACES else name


def source_of(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."


def copy_value(value: Any) -> Any:
    if isinstance(value, list):
        return [copy_value(v) for v in value]
    if isinstance(value, dict):
        return {k: copy_value(v) for k, v in value.items()}
    return value
