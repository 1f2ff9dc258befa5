"""Step 3 of :mod:`toolrun.gateway.parse`: the calls in the code segments of a reply.

:class:`Reader` reads segments in order (literal assignments carry over from one to the next)
and collects calls of the offered tools, from Python (``tool(...)``, ``x = tool(...)``,
``print(tool(...))``, ``[f(), g()]``) or from JSON call objects; :meth:`Reader.checked` binds
and validates each against its schema and gives it an id.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from types import EllipsisType
from typing import Any

from toolrun.errors import CallError
from toolrun.gateway.errors import ParseError
from toolrun.gateway.find import (
    BUILTINS,
    NOT_JSON,
    Segment,
    as_json,
    first_line,
    parse_code,
    patterns_for,
)
from toolrun.gateway.literals import LiteralReader, dotted, source_of, strip_namespace
from toolrun.gateway.validate import OfferedTools

_NAME_KEYS = ("name", "function", "function_name", "tool", "tool_name", "action", "recipient_name")
_ARG_KEYS = ("arguments", "parameters", "args", "input", "tool_input", "action_input", "kwargs")
_CODE_LANGS = frozenset({"", "python", "py", "python3", "json", "tool_code", "tool_call"})
_INTENT_LANGS = frozenset({"tool_code", "tool_call"})


@dataclass(frozen=True, slots=True)
class _Call:
    name: str
    positional: list[Any]
    keywords: dict[str, Any]
    line: int
    json_names: bool = False


class Reader(LiteralReader):
    """Reads segments in order; literal assignments carry over from one segment to the next."""

    def __init__(self, offered: OfferedTools) -> None:
        super().__init__(offered)
        self.patterns = patterns_for(offered)
        self.calls: list[_Call] = []
        self.code = ""

    def read(self, segment: Segment) -> bool:
        """Add the calls in ``segment``; ``False`` when it is not tool code (it is prose)."""
        self.base = segment.line
        self.code = segment.code
        if segment.lang.startswith("unterminated:"):
            return self._unterminated(segment)
        if segment.lang not in _CODE_LANGS:
            return False
        if segment.name is not None:
            return self._json_arguments(segment)
        intent = segment.intent or segment.lang in _INTENT_LANGS
        value = as_json(segment.code)
        if value is not NOT_JSON:
            if not (intent or self._json_shaped(value)):
                return False
            self._json_calls(value, first_line(segment.code))
            return True
        try:
            tree = parse_code(segment.code)
        except SyntaxError as error:
            if intent or self.patterns.mentioned(segment.code):
                raise self.syntax_error(error) from None
            return False
        if not intent and not self._is_tool_code(tree):
            self._harvest(tree)
            return False
        before = len(self.calls)
        for statement in tree.body:
            self._statement(statement)
        return len(self.calls) > before

    def checked(self) -> list[tuple[str, dict[str, Any]]]:
        """Every call bound and validated: ``(original tool name, JSON arguments)``."""
        calls: list[tuple[str, dict[str, Any]]] = []
        for call in self.calls:
            try:
                name, arguments = self.offered.check(
                    call.name, call.positional, call.keywords, json_names=call.json_names
                )
            except CallError as error:
                raise ParseError(
                    f"line {call.line}: {error.message}", line=call.line, detail=error.detail
                ) from None
            calls.append((name, arguments))
        return calls

    # -- segments

    def _unterminated(self, segment: Segment) -> bool:
        lang = segment.lang.removeprefix("unterminated:")
        if lang in _CODE_LANGS and self.patterns.mentioned(segment.code):
            line = segment.line - 1
            raise ParseError(
                f"line {line}: the code block opened here is never closed (was the reply cut "
                "off?); no calls were read from it",
                line=line,
            )
        return False

    def _json_arguments(self, segment: Segment) -> bool:
        name = segment.name or ""
        value = self._json_value(segment.code)
        if not isinstance(value, dict):
            raise self.error(1, f"the arguments of {name} must be a JSON object")
        self.calls.append(_Call(strip_namespace(name), [], value, segment.line, json_names=True))
        return True

    def _json_value(self, code: str) -> Any:
        value = as_json(code)
        if value is not NOT_JSON:
            return value
        try:
            tree = parse_code(code)
        except SyntaxError as error:
            raise self.syntax_error(error) from None
        if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Expr):
            raise self.error(1, "expected one JSON object")
        return self.value(tree.body[0].value)

    def _harvest(self, tree: ast.Module) -> None:
        """The literal assignments of code that holds no calls: a later block may use them."""
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            else:
                continue
            if isinstance(target, ast.Name):
                try:
                    self.variables[target.id] = self.value(value)
                except ParseError:
                    self.variables.pop(target.id, None)

    def _is_tool_code(self, tree: ast.Module) -> bool:
        """Calls an offered tool; or is nothing but calls of plain names that are not Python
        builtins (an unknown tool), or JSON call objects. Otherwise it is a program or data
        shown to the user."""
        if any(isinstance(n, ast.Call) and self._tool_of(n.func) for n in ast.walk(tree)):
            return True
        foreign = False
        for statement in tree.body:
            if isinstance(statement, ast.Import | ast.ImportFrom | ast.Pass):
                continue
            value = getattr(statement, "value", None)
            if not isinstance(statement, ast.Expr | ast.Assign | ast.AnnAssign) or value is None:
                return False
            if isinstance(value, ast.Call):
                name = dotted(value.func)
                if name is None or ("." in name and strip_namespace(name) == name):
                    return False  # a method of something: a program
                foreign = foreign or (name not in BUILTINS and name not in self.models)
            elif isinstance(value, ast.Dict | ast.List) and isinstance(statement, ast.Expr):
                foreign = foreign or self._literal_shaped(value)
        return foreign

    def _literal_shaped(self, node: ast.expr) -> bool:
        try:
            return self._json_shaped(self.value(node))
        except ParseError:
            return False

    def _json_shaped(self, value: Any) -> bool:
        """A JSON call object, a list of them, or ``{"tool_calls": [...]}``."""
        if isinstance(value, dict) and isinstance(value.get("tool_calls"), list):
            value = value["tool_calls"]
        items = value if isinstance(value, list) else [value]
        return bool(items) and all(self._one_shaped(item) for item in items)

    def _one_shaped(self, item: Any) -> bool:
        if not isinstance(item, dict):
            return False
        if isinstance(item.get("function"), dict):
            return self._one_shaped(item["function"])
        name = next((item[k] for k in _NAME_KEYS if isinstance(item.get(k), str)), None)
        if name is None:
            return False
        return any(k in item for k in _ARG_KEYS) or bool(self.offered.lookup(strip_namespace(name)))

    # -- statements

    def _statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Expr):
            self._expression(node.value)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            self._assign(node.targets[0], node.value)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            self._assign(node.target, node.value)
        elif not isinstance(node, ast.Import | ast.ImportFrom | ast.Pass):
            kind = type(node).__name__.lower()
            error = self.error(
                node.lineno,
                f"a {_STATEMENTS.get(kind, kind + ' statement')} is not allowed; write only "
                "calls of the offered tools, one per line, with literal arguments",
            )
            if kind in _RUNNABLE:
                error.code = self.code  # a run of the code could collect its calls
            raise error

    def _expression(self, node: ast.expr) -> None:
        if isinstance(node, ast.Call):
            self._call(node)
        elif isinstance(node, ast.List | ast.Tuple) and all(
            isinstance(e, ast.Call) for e in node.elts
        ):
            for element in node.elts:
                self._call(element)  # type: ignore[arg-type]
        elif isinstance(node, ast.Dict | ast.List):
            value = self.value(node)
            if self._json_shaped(value):
                self._json_calls(value, node.lineno)
        elif not (isinstance(node, ast.Constant) and isinstance(node.value, str | EllipsisType)):
            raise self.error(node.lineno, f"`{source_of(node)}` is not a call of an offered tool")

    def _assign(self, target: ast.expr, value: ast.expr) -> None:
        if not isinstance(target, ast.Name):
            raise self.error(target.lineno, "only a plain name can be assigned a value")
        if isinstance(value, ast.Call) and self._tool_of(value.func):
            self.results[target.id] = self._call(value)
            return
        self.variables[target.id] = self.value(value)
        self.results.pop(target.id, None)

    def _tool_of(self, func: ast.expr) -> str | None:
        name = dotted(func)
        if name is None:
            return None
        name = strip_namespace(name)
        return name if self.offered.lookup(name) else None

    def _call(self, node: ast.Call) -> str:
        name = dotted(node.func)
        tool = self._tool_of(node.func)
        if tool is None:
            if name == "print":
                return self._print(node)
            if name in self.models:
                raise self.error(node.lineno, f"{name} describes parameters; it is not a tool")
            shown = name or source_of(node.func)
            raise self.error(
                node.lineno,
                f"unknown tool {shown!r}; the offered tools are {self.offered.describe()}",
            )
        positional = [self.value(arg, tool) for arg in node.args]
        keywords: dict[str, Any] = {}
        for keyword in node.keywords:
            value = self.value(keyword.value, tool)
            if keyword.arg is None and not isinstance(value, dict):
                raise self.error(node.lineno, "`**` must unpack a dict literal")
            pairs = value.items() if keyword.arg is None else [(keyword.arg, value)]
            for key, item in pairs:
                if key in keywords:
                    raise self.error(node.lineno, f"{tool}() got the argument {key!r} twice")
                keywords[key] = item
        self.calls.append(_Call(tool, positional, keywords, self.base + node.lineno - 1))
        return tool

    def _print(self, node: ast.Call) -> str:
        inner = node.args[0] if len(node.args) == 1 and not node.keywords else None
        if isinstance(inner, ast.Call) and self._tool_of(inner.func):
            return self._call(inner)
        if any(isinstance(n, ast.Call) for a in node.args for n in ast.walk(a)):
            raise self.error(node.lineno, f"`{source_of(node)}` calls something that is not a tool")
        return "print"

    def _json_calls(self, value: Any, lineno: int) -> None:
        items = (
            value.get("tool_calls") or value.get("tool_uses") if isinstance(value, dict) else None
        )
        items = items if isinstance(items, list) else value if isinstance(value, list) else [value]
        for item in items:
            call = self._json_call(item, lineno) if isinstance(item, dict) else None
            if call is None:
                raise self.error(
                    lineno, "this JSON is not a tool call (expected name and arguments)"
                )
            self.calls.append(call)

    def _json_call(self, item: dict[str, Any], lineno: int) -> _Call | None:
        if isinstance(item.get("function"), dict):
            return self._json_call(item["function"], lineno)
        name_key = next((k for k in _NAME_KEYS if isinstance(item.get(k), str)), None)
        if name_key is None:
            return None
        name = strip_namespace(item[name_key])
        args_key = next((k for k in _ARG_KEYS if k in item), None)
        if args_key is None:  # {"name": "tool", "city": "Paris"}: only for an offered tool
            if not self.offered.lookup(name):
                return None
            arguments = {k: v for k, v in item.items() if k not in (name_key, "type", "id")}
        else:
            arguments = item[args_key]
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                raise self.error(lineno, f"the arguments of {name} are not valid JSON") from None
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise self.error(lineno, f"the arguments of {name} must be an object")
        return _Call(name, [], arguments, self.base + lineno - 1, json_names=True)


_STATEMENTS = {
    "for": "loop",
    "while": "loop",
    "if": "condition",
    "functiondef": "function definition",
    "asyncfunctiondef": "function definition",
    "classdef": "class definition",
    "with": "with block",
    "try": "try block",
    "augassign": "augmented assignment",
    "return": "return statement",
}
_RUNNABLE = frozenset({"for", "while", "if"})
