"""Compile a parsed Mongo-style filter (:mod:`toolrun.registry.query`) into a SQL WHERE clause on
the ``doc`` column, so filtering runs in the database. The reference evaluator
:func:`~toolrun.registry.query.matches` defines the answer; a property test holds both
dialects to it.

Every predicate here is two-valued (TRUE/FALSE, never NULL, guarded by "the path exists"), so
``NOT`` (``$not``, ``$ne``, ``$nin``, ``$nor``) negates exactly. Arrays are only opened under a
``CASE`` on their type: neither engine promises to evaluate ``AND`` left to right, and
``jsonb_array_elements`` raises on a non-array.

- PostgreSQL (JSONB): paths are chains of ``->`` with text keys, which yield NULL through arrays
  and scalars (objects-only traversal). JSONB ``=`` and ``@>`` compare numbers numerically and
  keep booleans apart. Strings are compared and matched under ``COLLATE "C"`` (code point
  order; ASCII-only classes and case folding in regexes).
- SQLite (JSON text): ``json_type`` tells the JSON type (``json_extract`` alone turns ``true``
  into 1 and ``null`` into NULL); array elements come from ``json_each``. ``$regex`` and
  equality with an array or object call Python functions that
  :func:`install_sqlite_functions` registers on each connection (the regex subset has no SQLite
  builtin, and equality spelled in SQL nests a level per level of the operand, which overflows
  SQLite's parser stack at the fourth).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    Boolean,
    ColumnElement,
    String,
    Text,
    and_,
    case,
    cast,
    column,
    exists,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB

from toolrun.errors import StoreError
from toolrun.registry.query import (
    All,
    And,
    Compare,
    Eq,
    Exists,
    Field,
    Filter,
    In,
    Nor,
    Not,
    Op,
    Or,
    Regex,
    RegexError,
    compile_regex,
    json_equal,
)

__all__ = ["compile_filter", "install_sqlite_functions"]

SQLITE_REGEX_FUNCTION = "toolrun_regex"
SQLITE_JSON_EQUAL_FUNCTION = "toolrun_json_equal"
_SQL_OPS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}

R = TypeVar("R")
Pred = Callable[[R], ColumnElement[bool]]


class _Compiler(Generic[R]):
    """Dialect-independent structure; ``R`` is a dialect's handle on one JSON value."""

    def filter(self, f: Filter) -> ColumnElement[bool]:
        if isinstance(f, And):
            return and_(true(), *(self.filter(c) for c in f.filters))
        if isinstance(f, Or):
            return or_(false(), *(self.filter(c) for c in f.filters))
        if isinstance(f, Nor):
            return not_(or_(false(), *(self.filter(c) for c in f.filters)))
        assert isinstance(f, Field)
        ref = self.path(f.path)
        return and_(true(), *(self.op(op, ref) for op in f.ops))

    def op(self, op: Op, ref: R) -> ColumnElement[bool]:
        if isinstance(op, Exists):
            return self.exists(ref) if op.present else not_(self.exists(ref))
        if isinstance(op, Not):
            return not_(and_(true(), *(self.op(o, ref) for o in op.ops)))
        if isinstance(op, Eq):
            return self.eq(ref, op.value)
        if isinstance(op, In):
            return or_(false(), *(self.eq(ref, v) for v in op.values))
        if isinstance(op, All):
            if not op.values:
                return false()
            return and_(self.exists(ref), *(self.has_element(ref, v) for v in op.values))
        if isinstance(op, Compare):
            return self.any_value(ref, lambda x: self.compare(x, op))
        assert isinstance(op, Regex)
        return self.any_value(ref, lambda x: self.regex(x, op))

    def eq(self, ref: R, value: Any) -> ColumnElement[bool]:
        found = self.any_value(ref, lambda x: self.equals(x, value))
        return or_(not_(self.exists(ref)), found) if value is None else found

    def any_value(self, ref: R, pred: Pred[R]) -> ColumnElement[bool]:
        """``pred`` holds for the value or, if it is an array, one of its elements."""
        return and_(self.exists(ref), or_(pred(ref), self.elements(ref, pred)))

    def has_element(self, ref: R, value: Any) -> ColumnElement[bool]:
        return self.elements(ref, lambda e: self.equals(e, value))

    def elements(self, ref: R, pred: Pred[R]) -> ColumnElement[bool]:
        """The value is an array and ``pred`` holds for one of its elements."""
        return case((self.type_is(ref, "array"), self.any_element(ref, pred)), else_=false())

    # a dialect provides these; none may be NULL once ``exists`` holds
    def path(self, path: tuple[str, ...]) -> R:
        raise NotImplementedError

    def exists(self, ref: R) -> ColumnElement[bool]:
        raise NotImplementedError

    def type_is(self, ref: R, kind: str) -> ColumnElement[bool]:
        raise NotImplementedError

    def any_element(self, ref: R, pred: Pred[R]) -> ColumnElement[bool]:
        raise NotImplementedError

    def equals(self, ref: R, value: Any) -> ColumnElement[bool]:
        raise NotImplementedError

    def compare(self, ref: R, op: Compare) -> ColumnElement[bool]:
        raise NotImplementedError

    def regex(self, ref: R, op: Regex) -> ColumnElement[bool]:
        raise NotImplementedError


def _jsonb(value: Any) -> ColumnElement[Any]:
    return cast(literal(json.dumps(value), Text), JSONB)


class _Postgres(_Compiler[ColumnElement[Any]]):
    """A handle is a JSONB expression (SQL NULL when the path is missing)."""

    def __init__(self, doc: ColumnElement[Any]) -> None:
        self.doc = doc

    def path(self, path: tuple[str, ...]) -> ColumnElement[Any]:
        ref = self.doc
        for segment in path:
            ref = ref.op("->", return_type=JSONB)(literal(segment, Text))
        return ref

    def exists(self, ref: ColumnElement[Any]) -> ColumnElement[bool]:
        return ref.is_not(None)

    def type_is(self, ref: ColumnElement[Any], kind: str) -> ColumnElement[bool]:
        return func.jsonb_typeof(ref) == literal(kind, Text)

    def any_element(
        self, ref: ColumnElement[Any], pred: Pred[ColumnElement[Any]]
    ) -> ColumnElement[bool]:
        elements = func.jsonb_array_elements(ref).table_valued(column("value", JSONB)).alias()
        return exists(select(literal(1)).select_from(elements).where(pred(elements.c.value)))

    def eq(self, ref: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
        if isinstance(value, list | dict):
            return super().eq(ref, value)
        # For a scalar, ``@>`` is exactly "equal, or an array with an equal element".
        found = and_(self.exists(ref), ref.op("@>", return_type=Boolean)(_jsonb(value)))
        return or_(not_(self.exists(ref)), found) if value is None else found

    def equals(self, ref: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
        return ref.op("=", return_type=Boolean)(_jsonb(value))

    def _text(self, ref: ColumnElement[Any]) -> ColumnElement[str]:
        return ref.op("#>>", return_type=Text)(literal_column("'{}'")).collate("C")

    def compare(self, ref: ColumnElement[Any], op: Compare) -> ColumnElement[bool]:
        if isinstance(op.value, str):
            text_cmp = _SQL_OPS[op.op](self._text(ref), literal(op.value, Text))
            return and_(self.type_is(ref, "string"), text_cmp)
        # JSONB orders numbers numerically (the type check keeps other kinds out)
        return and_(self.type_is(ref, "number"), _SQL_OPS[op.op](ref, _jsonb(op.value)))

    def regex(self, ref: ColumnElement[Any], op: Regex) -> ColumnElement[bool]:
        pattern = literal(op.compiled.postgres, Text)
        return and_(self.type_is(ref, "string"), self._text(ref).op("~")(pattern))


class _SqliteRef:
    """A JSON value in SQLite: its ``json_type`` name (NULL if missing) and its SQL value
    (the text, number, or JSON text of an array/object; meaningless for true/false/null)."""

    def __init__(self, type_: ColumnElement[Any], value: ColumnElement[Any]) -> None:
        self.type = type_
        self.value = value


class _Sqlite(_Compiler[_SqliteRef]):
    def __init__(self, doc: ColumnElement[Any]) -> None:
        self.doc = doc

    def path(self, path: tuple[str, ...]) -> _SqliteRef:
        # segments are [A-Za-z0-9_-]+, so quoting them is safe and never needs escapes
        json_path = literal("$" + "".join(f'."{s}"' for s in path), String)
        return _SqliteRef(
            func.json_type(self.doc, json_path), func.json_extract(self.doc, json_path)
        )

    def exists(self, ref: _SqliteRef) -> ColumnElement[bool]:
        return ref.type.is_not(None)

    def type_is(self, ref: _SqliteRef, kind: str) -> ColumnElement[bool]:
        return ref.type == literal(kind, String)

    def any_element(self, ref: _SqliteRef, pred: Pred[_SqliteRef]) -> ColumnElement[bool]:
        each = func.json_each(ref.value).table_valued("type", "value").alias()
        return exists(
            select(literal(1)).select_from(each).where(pred(_SqliteRef(each.c.type, each.c.value)))
        )

    def equals(self, ref: _SqliteRef, value: Any) -> ColumnElement[bool]:
        if value is None:
            return self.type_is(ref, "null")
        if isinstance(value, bool):
            return self.type_is(ref, "true" if value else "false")
        if isinstance(value, int | float):
            return and_(ref.type.in_(["integer", "real"]), ref.value == literal(value))
        if isinstance(value, str):
            return and_(self.type_is(ref, "text"), ref.value == literal(value, String))
        # Arrays and objects: one flat call (nesting SQL per level overflows SQLite's parser).
        kind = "array" if isinstance(value, list) else "object"
        call = getattr(func, SQLITE_JSON_EQUAL_FUNCTION)(ref.value, literal(_canonical(value)))
        return and_(self.type_is(ref, kind), call.op("=", return_type=Boolean)(1))

    def compare(self, ref: _SqliteRef, op: Compare) -> ColumnElement[bool]:
        if isinstance(op.value, str):
            is_type = self.type_is(ref, "text")
        else:
            is_type = ref.type.in_(["integer", "real"])
        return and_(is_type, _SQL_OPS[op.op](ref.value, literal(op.value)))

    def regex(self, ref: _SqliteRef, op: Regex) -> ColumnElement[bool]:
        call = getattr(func, SQLITE_REGEX_FUNCTION)(
            literal(op.pattern, String), literal(op.options, String), ref.value
        )
        return and_(self.type_is(ref, "text"), call.op("=", return_type=Boolean)(1))


def compile_filter(
    f: Filter, doc_column: ColumnElement[Any], dialect_name: str
) -> ColumnElement[bool]:
    """A WHERE clause selecting the rows whose ``doc_column`` matches ``f``.

    Use it in a statement whose FROM has ``doc_column``'s table (array and object checks are
    correlated subqueries). On SQLite, connections need :func:`install_sqlite_functions`.
    """
    if dialect_name == "postgresql":
        return _Postgres(doc_column).filter(f)
    if dialect_name == "sqlite":
        return _Sqlite(doc_column).filter(f)
    raise StoreError(f"filters are not supported on the {dialect_name!r} database")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@lru_cache(maxsize=256)
def _operand(text: str) -> Any:
    return json.loads(text)


def _sqlite_regex(pattern: Any, options: Any, value: Any) -> int:
    if not (isinstance(pattern, str) and isinstance(options, str) and isinstance(value, str)):
        return 0
    try:
        return int(compile_regex(pattern, options).search(value))
    except RegexError:
        return 0


def _sqlite_json_equal(stored: Any, operand: Any) -> int:
    if not (isinstance(stored, str) and isinstance(operand, str)):
        return 0
    try:
        return int(json_equal(json.loads(stored), _operand(operand)))
    except (ValueError, RecursionError):
        return 0


def install_sqlite_functions(dbapi_connection: Any) -> None:
    """Register the functions SQLite filters call on a sqlite3 connection; hook it on the
    engine's ``connect`` event. Both are deterministic, never raise (0 on bad input) and run in
    linear time: ``toolrun_regex(pattern, options, text)`` (the portable regex subset) and
    ``toolrun_json_equal(json_text, json_text)`` (JSON deep equality, 1 == 1.0, true != 1)."""
    for name, arity, fn in (
        (SQLITE_REGEX_FUNCTION, 3, _sqlite_regex),
        (SQLITE_JSON_EQUAL_FUNCTION, 2, _sqlite_json_equal),
    ):
        dbapi_connection.create_function(name, arity, fn, deterministic=True)
