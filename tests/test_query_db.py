"""Filters run in the database (SQLite and PostgreSQL) give the reference evaluator's answers:
on hand-picked semantics and on random tool-shaped documents and random filters."""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, event, insert, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError

from tests.test_query import DOC, SEMANTICS, patterns
from toolrun.errors import StoreError
from toolrun.registry.query import Filter, matches, parse_filter
from toolrun.registry.tool import Tool
from toolrun.storage.filters import compile_filter, install_sqlite_functions
from toolrun.storage.tables import metadata, tools

NOW = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """One engine per backend for the module; PostgreSQL gets a throwaway database."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('query') / 'query.db'}")
        event.listen(engine, "connect", lambda dbapi, _record: install_sqlite_functions(dbapi))
        metadata.create_all(engine)
        yield engine
        engine.dispose()
        return
    admin_url: str = request.getfixturevalue("postgres_server")  # skips, or fails when CI=true
    name = f"toolrun_query_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        try:  # a default collation that is not code point order ("B" > "a"), when ICU exists
            conn.execute(
                text(
                    f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' "
                    "LOCALE 'C.UTF-8' LOCALE_PROVIDER icu ICU_LOCALE 'und'"
                )
            )
        except DBAPIError:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(make_url(admin_url).set(database=name))
    try:
        metadata.create_all(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def select_ids(engine: Engine, docs: dict[str, dict[str, Any]], f: Filter) -> set[str]:
    """Insert ``docs``, run the compiled filter, roll back (the table stays empty)."""
    rows = [
        {"id": i, "name": "t", "namespace": None, "doc": d, "created_at": NOW, "updated_at": NOW}
        for i, d in docs.items()
    ]
    with engine.connect() as conn, conn.begin() as tx:
        conn.execute(insert(tools), rows)
        where = compile_filter(f, tools.c.doc, engine.dialect.name)
        found = set(conn.scalars(select(tools.c.id).where(where)))
        tx.rollback()
    return found


@pytest.mark.parametrize(("raw", "expected"), SEMANTICS)
def test_database_semantics(engine: Engine, raw: dict[str, Any], expected: bool) -> None:
    f = parse_filter(raw)
    found = select_ids(engine, {"doc": DOC, "empty": {}}, f)
    assert ("doc" in found) is expected
    assert ("empty" in found) is matches(f, {})


def test_object_equality_with_keys_no_json_path_can_name(engine: Engine) -> None:
    stored = {"m": {"a.b": 1, 'k"q': [1, {"x": None}], "é": "z", "": True}}
    docs = {"same": stored, "other": {"m": {"a.b": 1, 'k"q': [1, {"x": 0}], "é": "z", "": True}}}
    literal = {"": True, "é": "z", 'k"q': [1.0, {"x": None}], "a.b": 1.0}
    assert select_ids(engine, docs, parse_filter({"m": literal})) == {"same"}
    assert select_ids(engine, docs, parse_filter({"m": {"$ne": literal}})) == {"other"}


def test_strings_never_match_the_json_text_of_containers(engine: Engine) -> None:
    docs = {"doc": {"m": ["a"], "n": {"k": 1}, "t": True}}
    for raw in (
        {"m": '["a"]'},
        {"n": '{"k":1}'},
        {"n": {"$gte": "{"}},
        {"n": {"$regex": "k"}},
        {"t": {"$in": [1, "1", "true"]}},
    ):
        assert select_ids(engine, docs, parse_filter(raw)) == set(), raw
    assert select_ids(engine, docs, parse_filter({"m": "a", "n.k": 1.0, "t": True})) == {"doc"}


def test_the_deepest_filters_run(engine: Engine) -> None:
    """Nesting at the parser's depth limit still compiles to SQL the database accepts."""
    literal: Any = {"k": [1, {"v": None}]}
    for _ in range(12):
        literal = {"k": [literal]}
    logical: dict[str, Any] = {"tags": {"$not": {"$regex": "x"}}}
    for i in range(14):
        logical = {("$or", "$and", "$nor")[i % 3]: [logical, {"name": {"$ne": "n"}}]}
    doc = {"name": "n", "tags": ["t"], "m": literal}
    for raw in ({"m": literal}, {"m": {"$nin": [literal]}}, logical):
        f = parse_filter(raw)
        expected = {i for i, d in (("doc", doc), ("empty", {})) if matches(f, d)}
        assert len(expected) == 1
        assert select_ids(engine, {"doc": doc, "empty": {}}, f) == expected


def test_tool_documents(engine: Engine) -> None:
    weather = Tool(name="weather", tags=["utils", "geo"], metadata={"owner": {"team": "core"}})
    adder = Tool(name="adder", version="v1.0.0", tags=["math"], policy={"isolation": "inline"})
    docs = {t.id: t.to_document() for t in (weather, adder)}
    cases = {
        "weather": {"tags": "utils", "metadata.owner.team": {"$regex": "^co"}},
        "adder:v1.0.0": {"policy.isolation": "inline", "version": {"$gte": "v1"}},
    }
    for tool_id, raw in cases.items():
        assert select_ids(engine, docs, parse_filter(raw)) == {tool_id}


def test_unknown_dialect_is_refused() -> None:
    with pytest.raises(StoreError, match="'mysql'"):
        compile_filter(parse_filter({}), tools.c.doc, "mysql")


def test_sqlite_functions_are_deterministic_and_never_raise() -> None:
    conn = sqlite3.connect(":memory:")
    install_sqlite_functions(conn)
    rows = conn.execute(
        "SELECT toolrun_regex('^a.c$', 'i', 'AbC'), toolrun_regex('^a.c$', '', 'abc\n'),"
        " toolrun_regex('(', '', 'x'), toolrun_regex('a', 'g', 'a'), toolrun_regex('a', '', 1),"
        " toolrun_regex(NULL, '', 'a'), toolrun_regex('(a*)*b', '', ?)",
        ("a" * 5000,),
    ).fetchone()
    assert rows == (1, 0, 0, 0, 0, 0, 0)
    rows = conn.execute(
        "SELECT toolrun_json_equal('{\"a\":[1.0,true]}', '{\"a\":[1,true]}'),"
        " toolrun_json_equal('[1]', '[true]'), toolrun_json_equal('{', '{}'),"
        " toolrun_json_equal(1, '1'), toolrun_json_equal(NULL, 'null')"
    ).fetchone()
    assert rows == (1, 0, 0, 0, 0)
    # only deterministic functions may appear in an index expression
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.execute("CREATE INDEX t_x ON t (toolrun_regex('a', '', x))")
    conn.close()


# --- the property: database == reference evaluator -------------------------------------------
#
# Documents are tool-shaped; filters use the documents' own paths and values half of the time
# (else random ones), so that most examples tell documents apart instead of matching all or none.

KEYS = ["name", "tags", "metadata", "owner", "team", "a", "b-c", "0", "x_y"]
TEXT = st.text(alphabet="aAbZ_ é\nÉ1😀\u212a", max_size=4)
NUMBERS = (
    st.integers(-3, 3)
    | st.sampled_from([0.5, -1.5, 2.0, -0.0, 1e16, 2**53])
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
)
SCALARS = st.none() | st.booleans() | NUMBERS | TEXT
OBJECT_KEYS = st.sampled_from([*KEYS, "é", 'k"q', "a.b"])
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(OBJECT_KEYS, inner, max_size=3),
    max_leaves=8,
)
SMALL_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(OBJECT_KEYS, inner, max_size=2),
    max_leaves=3,
)
DOCUMENTS = st.fixed_dictionaries(
    {"name": TEXT, "tags": st.lists(TEXT, max_size=3)},
    optional={"metadata": st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4), "a": VALUES},
)
RANDOM_PATHS = st.builds(
    lambda first, rest: ".".join([first, *rest]),
    st.sampled_from(["name", "tags", "metadata", "a", "missing"]),
    st.lists(st.sampled_from(KEYS), max_size=2),
)


def harvest(docs: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """``(path, value)`` for every path of the documents (through objects only)."""
    found: list[tuple[str, Any]] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if re.fullmatch(r"[A-Za-z0-9_\-]+", key):
                    found.append((f"{path}.{key}" if path else key, item))
                    walk(item, f"{path}.{key}" if path else key)

    for doc in docs:
        walk(doc, "")
    return found


def pick(items: list[Any]) -> st.SearchStrategy[Any]:
    # indexing rather than sampled_from, whose repr would list every item
    return st.integers(0, len(items) - 1).map(lambda i: items[i])


def weighted(*options: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    # (st.one_of would merge repeated branches instead of weighting them)
    choices = [strategy for weight, strategy in options for _ in range(weight)]
    return st.integers(0, len(choices) - 1).flatmap(lambda i: choices[i])


def escaped(text: str) -> str:
    return "".join(c if c.isalnum() else "\\" + c for c in text)


def regex(pattern: str, options: set[str]) -> dict[str, str]:
    if "x" in options:  # spaces would be ignored, leaving quantifiers with nothing to repeat
        pattern = " " + pattern.replace(" ", "\\ ") + " # comment"
    return {"$regex": pattern, "$options": "".join(sorted(options))}


def merged(parts: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        out.update(part)
    return out


def conditions(value: Any) -> st.SearchStrategy[Any]:
    """Conditions on a field, with operands often taken from one of its stored ``value``s."""
    near = [value, *(value if isinstance(value, list) else [])]
    operand = weighted((2, pick(near)), (1, SMALL_VALUES))
    scalars = [x for x in near if isinstance(x, int | float | str) and not isinstance(x, bool)]
    bound = st.one_of(pick(scalars), NUMBERS | TEXT) if scalars else NUMBERS | TEXT
    texts = [x for x in near if isinstance(x, str)]
    pieces = [escaped(t[i:j]) for t in texts for i in range(len(t)) for j in range(i, len(t) + 1)]
    pattern = weighted((2, pick(pieces)), (1, patterns())) if pieces else patterns()
    operators = st.one_of(
        st.builds(lambda op, v: {op: v}, st.sampled_from(["$eq", "$ne"]), operand),
        st.builds(
            lambda op, vs: {op: vs}, st.sampled_from(["$in", "$nin"]), st.lists(operand, max_size=3)
        ),
        st.builds(
            lambda vs: {"$all": vs}, st.lists(pick(near[1:]) if near[1:] else operand, max_size=3)
        ),
        st.builds(lambda v: {"$exists": v}, st.booleans()),
        st.builds(lambda op, v: {op: v}, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), bound),
        st.builds(
            regex,
            st.builds(str.__add__, st.sampled_from(["", "", "^"]), pattern),
            st.sets(st.sampled_from("imsx")),
        ),
    )
    operator_objects = st.lists(operators, min_size=1, max_size=2).map(merged)
    return weighted(
        (1, operand.filter(lambda v: not (isinstance(v, dict) and v))),  # a literal: $eq
        (3, operator_objects),
        (1, operator_objects.map(lambda ops: {"$not": ops})),
    )


def filters(found: list[tuple[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    known = pick(found).flatmap(lambda pv: st.builds(lambda c: {pv[0]: c}, conditions(pv[1])))
    unknown = st.builds(lambda p, c: {p: c}, RANDOM_PATHS, conditions(None))
    return st.recursive(
        weighted((2, known), (1, unknown)),
        lambda inner: (
            st.builds(
                lambda op, fs: {op: fs},
                st.sampled_from(["$and", "$or", "$nor"]),
                st.lists(inner, min_size=1, max_size=3),
            )
            | st.lists(inner, min_size=2, max_size=3).map(merged)
        ),
        max_leaves=5,
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    docs = draw(st.lists(DOCUMENTS, min_size=1, max_size=6))
    return docs, draw(filters(harvest(docs)))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=cases())
def test_database_agrees_with_the_evaluator(
    engine: Engine, case: tuple[list[dict[str, Any]], dict[str, Any]]
) -> None:
    docs, raw = case
    f = parse_filter(raw)
    by_id = {str(i): d for i, d in enumerate(docs)}
    expected = {i for i, d in by_id.items() if matches(f, d)}
    assert select_ids(engine, by_id, f) == expected
