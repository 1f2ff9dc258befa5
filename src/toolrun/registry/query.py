"""Mongo-style filters over tool documents: parse and validate into a small AST, and a pure-Python
reference evaluator. :mod:`toolrun.storage.filters` compiles the same AST to SQL; a property test
holds the two to the same answers on SQLite and PostgreSQL.

Semantics
---------
- A filter is a JSON object. Keys are field paths (``metadata.owner.team``) or the logical
  operators ``$and``, ``$or``, ``$nor``, each taking a non-empty list of filters. Several keys
  are ANDed; ``{}`` matches everything.
- A field's condition is an operator object (every key starts with ``$``; several operators are
  ANDed) or a literal, meaning ``$eq``. An object mixing ``$`` and plain keys is an error.
- Paths: segments match ``[A-Za-z0-9_-]+``. Traversal goes through objects only: a path that
  meets an array or a scalar before its end is *missing* (``tags.0`` never indexes ``tags``).
- ``$eq``: JSON deep equality; numbers compare numerically (``1 == 1.0``) but booleans are not
  numbers. If the field is an array it also matches when any element equals the operand (one
  level). ``{f: null}`` also matches a missing ``f``. ``$ne`` is ``$not: {$eq}`` (a missing
  field matches); ``$in`` is any ``$eq``; ``$nin`` is ``$not: {$in}``.
- ``$all: [..]``: the field is an array with, for every operand, an element equal to it;
  ``$all: []`` matches nothing.
- ``$exists: true|false``: the path is present; a JSON ``null`` is present.
- ``$gt $gte $lt $lte``: the operand is a number or a string; only a number compares with a
  number and a string with a string (code point order); on an array, any element may match.
- ``$regex`` (with optional ``$options`` from ``imsx``): matches a string, or any string element
  of an array. Patterns are a portable subset (see :func:`compile_regex`) executed by our own
  linear-time matcher in Python/SQLite and translated for PostgreSQL, so the answer is the same.
- ``$not``: an operator object, negated; a missing field satisfies it.
- Limits: JSON nesting depth 32 and 1000 JSON nodes per filter; patterns of 512 characters.
  Integers must fit in 64 bits (numbers beyond 2**53 may compare differently across databases);
  strings may not contain U+0000 (PostgreSQL cannot store it) or lone surrogates.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, cast

from toolrun.errors import QueryError
from toolrun.registry.regex import CompiledRegex, RegexError, compile_regex

__all__ = [
    "All",
    "And",
    "Compare",
    "CompareOp",
    "CompiledRegex",
    "Eq",
    "Exists",
    "Field",
    "Filter",
    "In",
    "Nor",
    "Not",
    "Op",
    "Or",
    "Regex",
    "RegexError",
    "compile_regex",
    "json_equal",
    "map_paths",
    "matches",
    "parse_filter",
]

MAX_DEPTH = 32
MAX_NODES = 1000
LOGICAL = ("$and", "$or", "$nor")
COMPARISONS = ("$gt", "$gte", "$lt", "$lte")
OPERATORS = (
    "$eq",
    "$ne",
    "$in",
    "$nin",
    "$all",
    "$exists",
    *COMPARISONS,
    "$regex",
    "$options",
    "$not",
)
_SEGMENT = re.compile(r"[A-Za-z0-9_\-]+")
_INT64 = 2**63

CompareOp = Literal["$gt", "$gte", "$lt", "$lte"]


# --- the AST -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Eq:
    value: Any


@dataclass(frozen=True)
class In:
    values: tuple[Any, ...]


@dataclass(frozen=True)
class All:
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Exists:
    present: bool


@dataclass(frozen=True)
class Compare:
    op: CompareOp
    value: int | float | str


@dataclass(frozen=True)
class Regex:
    pattern: str
    options: str
    compiled: CompiledRegex = field(repr=False, compare=False)


@dataclass(frozen=True)
class Not:
    ops: tuple[Op, ...]


Op: TypeAlias = Eq | In | All | Exists | Compare | Regex | Not


@dataclass(frozen=True)
class Field:
    path: tuple[str, ...]
    ops: tuple[Op, ...]


@dataclass(frozen=True)
class And:
    filters: tuple[Filter, ...]


@dataclass(frozen=True)
class Or:
    filters: tuple[Filter, ...]


@dataclass(frozen=True)
class Nor:
    filters: tuple[Filter, ...]


Filter: TypeAlias = And | Or | Nor | Field


# --- parsing -------------------------------------------------------------------------------


def _safe(text: str, limit: int = 60) -> str:
    """User text fit for a message: bounded, and encodable (lone surrogates escaped)."""
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _show(value: Any) -> str:
    try:
        return _safe(json.dumps(value, ensure_ascii=False))
    except (TypeError, ValueError):
        return _safe(repr(value))


def _error(message: str, *, path: str | None = None, operator: str | None = None) -> QueryError:
    detail = {"path": path and _safe(path, 200), "operator": operator and _safe(operator)}
    return QueryError(message, detail=detail)


def _check_size(raw: Any) -> None:
    """Bound depth and node count before any recursion (iteratively, so hostile input is cheap)."""
    stack: list[tuple[Any, int]] = [(raw, 1)]
    nodes = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise _error(f"filter too large: more than {MAX_NODES} JSON values")
        if depth > MAX_DEPTH:
            raise _error(f"filter nested too deeply: more than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def _json_value(value: Any, where: str, operator: str) -> Any:
    """Validate a JSON operand; return a private copy (the AST must not alias caller data)."""

    def bad(why: str) -> QueryError:
        return _error(f"'{operator}' at '{where}': {why}", path=where, operator=operator)

    def check_str(text: str) -> str:
        if "\x00" in text:
            raise bad("strings may not contain U+0000")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise bad("strings must be valid Unicode (no lone surrogates)") from None
        return text

    def walk(v: Any) -> Any:
        if v is None or isinstance(v, bool):
            return v
        if isinstance(v, int):
            if not -_INT64 <= v < _INT64:
                raise bad(f"integer {v} does not fit in 64 bits")
            return v
        if isinstance(v, float):
            if not math.isfinite(v):
                raise bad(f"{v} is not a JSON number")
            return v
        if isinstance(v, str):
            return check_str(v)
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                raise bad("object keys must be strings")
            return {check_str(k): walk(x) for k, x in v.items()}
        raise bad(f"{type(v).__name__} is not a JSON value")

    return walk(value)


def _parse_path(key: str, roots: Collection[str] | None) -> tuple[str, ...]:
    path = tuple(key.split("."))
    if not all(_SEGMENT.fullmatch(seg) for seg in path):
        raise _error(
            f"invalid field path '{_safe(key)}': segments are separated by '.' and may only "
            "contain letters, digits, '_' and '-'",
            path=key,
        )
    if roots is not None and path[0] not in roots:
        known = ", ".join(sorted(roots))
        raise _error(f"unknown field '{path[0]}'; top-level fields are: {known}", path=key)
    return path


def _parse_ops(where: str, spec: dict[str, Any]) -> tuple[Op, ...]:
    ops: list[Op] = []
    for name, operand in spec.items():
        if name == "$options":
            if "$regex" not in spec:
                raise _error(f"'$options' at '{where}' needs a sibling '$regex'", path=where)
            continue
        ops.append(_parse_op(where, name, operand, spec))
    return tuple(ops)


def _parse_op(where: str, name: str, operand: Any, spec: dict[str, Any]) -> Op:
    def bad(why: str) -> QueryError:
        return _error(f"'{name}' at '{where}' {why}", path=where, operator=name)

    if name in ("$eq", "$ne"):
        value = _json_value(operand, where, name)
        return Eq(value) if name == "$eq" else Not((Eq(value),))
    if name in ("$in", "$nin", "$all"):
        if not isinstance(operand, list):
            raise bad(f"needs a list, got {_show(operand)}")
        values = tuple(_json_value(operand, where, name))
        if name == "$all":
            return All(values)
        return In(values) if name == "$in" else Not((In(values),))
    if name == "$exists":
        if not isinstance(operand, bool):
            raise bad(f"needs true or false, got {_show(operand)}")
        return Exists(operand)
    if name in COMPARISONS:
        if isinstance(operand, bool) or not isinstance(operand, int | float | str):
            raise bad(f"needs a number or a string, got {_show(operand)}")
        return Compare(cast(CompareOp, name), _json_value(operand, where, name))
    if name == "$regex":
        return _parse_regex(where, operand, spec.get("$options", ""))
    if name == "$not":
        if not isinstance(operand, dict) or not operand:
            raise bad(f"needs a non-empty operator object, got {_show(operand)}")
        if not all(isinstance(k, str) and k.startswith("$") for k in operand):
            raise bad(
                f"needs an operator object (every key starting with '$'), got {_show(operand)}"
            )
        return Not(_parse_ops(where, operand))
    if name in LOGICAL:
        raise bad(f'is a logical operator: use it at filter level, e.g. {{"{name}": [...]}}')
    raise _error(
        f"unknown operator '{_safe(name)}' at '{where}'; supported: {', '.join(OPERATORS)}",
        path=where,
        operator=name,
    )


def _parse_regex(where: str, pattern: Any, options: Any) -> Regex:
    if not isinstance(pattern, str):
        raise _error(
            f"'$regex' at '{where}' needs a string, got {_show(pattern)}",
            path=where,
            operator="$regex",
        )
    if not isinstance(options, str) or set(options) - set("imsx"):
        raise _error(
            f"'$options' at '{where}' must be letters from 'imsx', got {_show(options)}",
            path=where,
            operator="$options",
        )
    try:
        compiled = compile_regex(pattern, options)
    except RegexError as exc:
        raise _error(
            f"'$regex' at '{where}': pattern {_show(pattern)}: {exc}", path=where, operator="$regex"
        ) from None
    return Regex(pattern, "".join(sorted(set(options))), compiled)


def _parse(raw: Any, roots: Collection[str] | None) -> Filter:
    if not isinstance(raw, dict):
        raise _error(f"a filter must be a JSON object, got {_show(raw)}")
    parts: list[Filter] = []
    for key, cond in raw.items():
        if not isinstance(key, str):
            raise _error(f"filter keys must be strings, got {_show(key)}")
        if key in LOGICAL:
            if not isinstance(cond, list) or not cond:
                raise _error(
                    f"'{key}' needs a non-empty list of filters, got {_show(cond)}", operator=key
                )
            children = tuple(_parse(c, roots) for c in cond)
            parts.append(
                And(children) if key == "$and" else Or(children) if key == "$or" else Nor(children)
            )
        elif key.startswith("$"):
            raise _error(
                f"unknown operator '{_safe(key)}' at the top level; supported here: "
                f"{', '.join(LOGICAL)} (field operators go inside a field: "
                '{"field": {"$eq": ...}})',
                operator=key,
            )
        else:
            path = _parse_path(key, roots)
            keys = list(cond) if isinstance(cond, dict) else []
            is_op = [isinstance(k, str) and k.startswith("$") for k in keys]
            if any(is_op) and not all(is_op):
                raise _error(
                    f"condition at '{key}' mixes operators and plain keys: {_show(cond)}; use "
                    'either operators only ({"$gt": 1, "$lt": 5}) or a literal object',
                    path=key,
                )
            if is_op and all(is_op):
                parts.append(Field(path, _parse_ops(key, cond)))
            else:
                parts.append(Field(path, (Eq(_json_value(cond, key, "$eq")),)))
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def parse_filter(raw: Any, *, roots: Collection[str] | None = None) -> Filter:
    """Validate a filter (see the module docstring) and return its AST.

    ``roots`` restricts the first segment of every path (``None``: any). Raises
    :class:`~toolrun.errors.QueryError` naming the bad operator, path or pattern.
    """
    _check_size(raw)
    return _parse(raw, None if roots is None else frozenset(roots))


def map_paths(filter_dict: Any, fn: Callable[[str], str]) -> dict[str, Any]:
    """Rewrite every field path of a raw filter with ``fn`` (operands are left alone).

    Two paths mapped to the same name are kept apart in an ``$and`` so no condition is lost.
    The result is not validated: pass it to :func:`parse_filter`.
    """
    _check_size(filter_dict)
    if not isinstance(filter_dict, dict):
        raise _error(f"a filter must be a JSON object, got {_show(filter_dict)}")
    out: dict[str, Any] = {}
    clashes: list[dict[str, Any]] = []
    for key, cond in filter_dict.items():
        if isinstance(key, str) and key.startswith("$"):
            mapped_key = key
            if key in LOGICAL and isinstance(cond, list):
                cond = [map_paths(c, fn) if isinstance(c, dict) else c for c in cond]
        else:
            mapped_key = fn(key) if isinstance(key, str) else key
        if mapped_key in out:
            clashes.append({mapped_key: cond})
        else:
            out[mapped_key] = cond
    if clashes:
        existing = out.get("$and")
        if isinstance(existing, list):
            out["$and"] = [*existing, *clashes]
        elif "$and" in out:  # malformed: keep it for parse_filter to report
            clashes.append({"$and": existing})
            out["$and"] = clashes
        else:
            out["$and"] = clashes
    return out


# --- the reference evaluator ---------------------------------------------------------------

_MISSING: Any = object()


def json_equal(a: Any, b: Any) -> bool:
    """JSON deep equality: numbers numerically, booleans apart from numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(json_equal, a, b))
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(json_equal(v, b[k]) for k, v in a.items())
        )
    return type(a) is type(b) and a == b


def _lookup(doc: Any, path: tuple[str, ...]) -> Any:
    for segment in path:
        if not isinstance(doc, dict) or segment not in doc:
            return _MISSING
        doc = doc[segment]
    return doc


def _any(value: Any, pred: Callable[[Any], bool]) -> bool:
    """``pred`` holds for the value itself or, if it is an array, for one of its elements."""
    return pred(value) or (isinstance(value, list) and any(pred(e) for e in value))


def _compare(op: CompareOp, x: Any, y: int | float | str) -> bool:
    if isinstance(y, str):
        if not isinstance(x, str):
            return False
    elif isinstance(x, bool) or not isinstance(x, int | float):
        return False
    if op == "$gt":
        return bool(x > y)
    if op == "$gte":
        return bool(x >= y)
    if op == "$lt":
        return bool(x < y)
    return bool(x <= y)


def _holds(op: Op, value: Any) -> bool:
    missing = value is _MISSING
    if isinstance(op, Exists):
        return op.present != missing
    if isinstance(op, Not):
        return not all(_holds(o, value) for o in op.ops)
    if isinstance(op, Eq):
        if missing:
            return op.value is None
        return _any(value, lambda x: json_equal(x, op.value))
    if isinstance(op, In):
        return any(_holds(Eq(v), value) for v in op.values)
    if missing:
        return False
    if isinstance(op, All):
        return (
            isinstance(value, list)
            and bool(op.values)
            and all(any(json_equal(e, v) for e in value) for v in op.values)
        )
    if isinstance(op, Compare):
        return _any(value, lambda x: _compare(op.op, x, op.value))
    return _any(value, lambda x: isinstance(x, str) and op.compiled.search(x))


def matches(filter_ast: Filter, doc: Mapping[str, Any]) -> bool:
    """The reference answer: does ``doc`` satisfy the filter?"""
    if isinstance(filter_ast, And):
        return all(matches(f, doc) for f in filter_ast.filters)
    if isinstance(filter_ast, Or):
        return any(matches(f, doc) for f in filter_ast.filters)
    if isinstance(filter_ast, Nor):
        return not any(matches(f, doc) for f in filter_ast.filters)
    value = _lookup(doc, filter_ast.path)
    return all(_holds(op, value) for op in filter_ast.ops)
