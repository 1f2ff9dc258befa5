"""The Mongo-style query language: parsing, the errors a person gets, the reference evaluator,
path mapping, and the portable regex subset (its matcher checked against Python's ``re``)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolrun.errors import QueryError
from toolrun.registry.query import (
    MAX_DEPTH,
    MAX_NODES,
    All,
    And,
    Compare,
    Eq,
    Exists,
    Field,
    In,
    Nor,
    Not,
    Or,
    Regex,
    RegexError,
    compile_regex,
    json_equal,
    map_paths,
    matches,
    parse_filter,
)

# --- parsing ---------------------------------------------------------------------------------


def test_parse_builds_the_ast() -> None:
    f = parse_filter(
        {
            "name": "x",
            "metadata.owner.team": {"$in": ["a", "b"], "$exists": True},
            "$or": [{"tags": {"$all": ["t"]}}, {"score": {"$gte": 2, "$ne": 3}}],
            "$nor": [{"a": {"$not": {"$lt": "m"}}}],
        }
    )
    assert f == And(
        (
            Field(("name",), (Eq("x"),)),
            Field(("metadata", "owner", "team"), (In(("a", "b")), Exists(True))),
            Or(
                (
                    Field(("tags",), (All(("t",)),)),
                    Field(("score",), (Compare("$gte", 2), Not((Eq(3),)))),
                )
            ),
            Nor((Field(("a",), (Not((Compare("$lt", "m"),)),)),)),
        )
    )


def test_parse_literal_objects_and_nin() -> None:
    assert parse_filter({}) == And(())
    assert parse_filter({"m": {}}) == Field(("m",), (Eq({}),))
    assert parse_filter({"m": {"k": [1]}}) == Field(("m",), (Eq({"k": [1]}),))
    assert parse_filter({"m": {"$nin": [1]}}) == Field(("m",), (Not((In((1,)),)),))


def test_parse_regex_keeps_pattern_and_sorted_options() -> None:
    f = parse_filter({"name": {"$regex": "^we", "$options": "si"}})
    assert isinstance(f, Field)
    (op,) = f.ops
    assert isinstance(op, Regex)
    assert (op.pattern, op.options) == ("^we", "is")
    assert op.compiled.search("Weather") and not op.compiled.search("a weather")


def test_operands_are_copied_not_aliased() -> None:
    value = {"k": [1, 2]}
    f = parse_filter({"m": value})
    value["k"].append(3)
    assert matches(f, {"m": {"k": [1, 2]}})


def test_roots_restrict_the_first_segment_only() -> None:
    assert parse_filter({"metadata.colour": 1}, roots=["metadata", "name"])
    with pytest.raises(QueryError) as info:
        parse_filter({"$or": [{"colour": 1}]}, roots=["name", "metadata"])
    assert info.value.message == "unknown field 'colour'; top-level fields are: metadata, name"
    assert info.value.detail == {"path": "colour", "operator": None}


BAD_FILTERS: list[tuple[Any, str]] = [
    ([], "a filter must be a JSON object, got []"),
    ({"tags": {"$foo": 1}}, "unknown operator '$foo' at 'tags'; supported: $eq, $ne, $in"),
    ({"tags": {"$in": 3}}, "'$in' at 'tags' needs a list, got 3"),
    ({"tags": {"$nin": "a"}}, "'$nin' at 'tags' needs a list, got \"a\""),
    ({"tags": {"$all": {"a": 1}}}, "'$all' at 'tags' needs a list"),
    ({"a..b": 1}, "invalid field path 'a..b'"),
    ({"a.b c": 1}, "invalid field path 'a.b c'"),
    ({"": 1}, "invalid field path ''"),
    ({"a.$b": 1}, "invalid field path 'a.$b'"),
    ({"a": {"$eq": 1, "b": 2}}, "condition at 'a' mixes operators and plain keys"),
    ({"$and": []}, "'$and' needs a non-empty list of filters, got []"),
    ({"$or": {"a": 1}}, "'$or' needs a non-empty list of filters"),
    ({"$nor": [1]}, "a filter must be a JSON object, got 1"),
    ({"$where": "1"}, "unknown operator '$where' at the top level; supported here: $and, $or"),
    ({"a": {"$or": [{"b": 1}]}}, "'$or' at 'a' is a logical operator"),
    ({"a": {"$exists": 1}}, "'$exists' at 'a' needs true or false, got 1"),
    ({"a": {"$gt": True}}, "'$gt' at 'a' needs a number or a string, got true"),
    ({"a": {"$lte": None}}, "'$lte' at 'a' needs a number or a string, got null"),
    ({"a": {"$lt": [1]}}, "'$lt' at 'a' needs a number or a string, got [1]"),
    ({"a": {"$regex": 5}}, "'$regex' at 'a' needs a string, got 5"),
    ({"a": {"$regex": "x", "$options": "ig"}}, "'$options' at 'a' must be letters from 'imsx'"),
    ({"a": {"$options": "i"}}, "'$options' at 'a' needs a sibling '$regex'"),
    ({"a": {"$not": 1}}, "'$not' at 'a' needs a non-empty operator object, got 1"),
    ({"a": {"$not": {}}}, "'$not' at 'a' needs a non-empty operator object"),
    ({"a": {"$not": {"b": 1}}}, "'$not' at 'a' needs an operator object"),
    ({"a": {"$not": {"$bar": 1}}}, "unknown operator '$bar' at 'a'"),
    ({"a": float("nan")}, "'$eq' at 'a': nan is not a JSON number"),
    ({"a": {"$in": [float("inf")]}}, "'$in' at 'a': inf is not a JSON number"),
    ({"a": "x\x00y"}, "strings may not contain U+0000"),
    ({"a": {"k\x00": 1}}, "strings may not contain U+0000"),
    ({"a": "\ud800"}, "no lone surrogates"),
    ({"a": 2**64}, "does not fit in 64 bits"),
    ({"a": {"$eq": (1, 2)}}, "tuple is not a JSON value"),
    ({"a": {"$eq": {1: 2}}}, "object keys must be strings"),
    ({"a": {"$regex": "(?=x)"}}, "only '(?:' groups are supported"),
    ({"a": {"$regex": "(?<!x)y"}}, "only '(?:' groups are supported"),
    ({"a": {"$regex": "(?P<n>x)"}}, "only '(?:' groups are supported"),
    ({"a": {"$regex": "(?i)x"}}, "only '(?:' groups are supported"),
    ({"a": {"$regex": r"(a)\1"}}, "backreferences are not supported"),
    ({"a": {"$regex": r"\p{L}"}}, r"unsupported escape '\p'"),
    ({"a": {"$regex": r"\Aa"}}, r"unsupported escape '\A'"),
    ({"a": {"$regex": "[[:alpha:]]"}}, "no POSIX classes"),
    ({"a": {"$regex": r"[\W]"}}, r"'\W' is not supported inside a class"),
    ({"a": {"$regex": r"[\d-z]"}}, "a class escape cannot start a range"),
    ({"a": {"$regex": "[z-a]"}}, "range out of order"),
    ({"a": {"$regex": "[]"}}, "empty class"),
    ({"a": {"$regex": "[a"}}, "missing ']'"),
    ({"a": {"$regex": "(a"}}, "missing ')'"),
    ({"a": {"$regex": "a)"}}, "unbalanced ')'"),
    ({"a": {"$regex": "*a"}}, "nothing to repeat"),
    ({"a": {"$regex": "a**"}}, "nothing to repeat"),
    ({"a": {"$regex": "a*+"}}, "nothing to repeat"),
    ({"a": {"$regex": "^*"}}, "an anchor cannot be repeated"),
    ({"a": {"$regex": "a{"}}, "'{' must start a repetition"),
    ({"a": {"$regex": "a{,3}"}}, "'{' must start a repetition"),
    ({"a": {"$regex": "{2}"}}, "nothing to repeat before '{'"),
    ({"a": {"$regex": "a{256}"}}, "repetition counts are limited to 255"),
    ({"a": {"$regex": "a{3,2}"}}, "needs m <= n"),
    ({"a": {"$regex": "a\\"}}, "trailing backslash"),
    ({"a": {"$regex": r"\x4"}}, r"'\x' needs 2 hex digits"),
    ({"a": {"$regex": r"\u0000"}}, "U+0000 and surrogate code points are not allowed"),
    ({"a": {"$regex": "a" * 513}}, "is longer than 512 characters"),
    ({"a": {"$regex": "(?:(?:a{200}){200})"}}, "is too complex"),
    ({"a": {"$regex": "(" * 33 + ")" * 33}}, "groups nested more than 32 deep"),
    ({"a\ud800": 1}, "invalid field path 'a\\ud800'"),  # surrogates are escaped in messages
    ({"a": {"$in": "\udfff"}}, "'$in' at 'a' needs a list, got \"\\udfff\""),
]


@pytest.mark.parametrize(("raw", "message"), BAD_FILTERS)
def test_bad_filters_are_query_errors_that_say_why(raw: Any, message: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_filter(raw)
    assert message in info.value.message
    assert info.value.status_code == 400
    json.dumps(info.value.to_dict(), ensure_ascii=False).encode()  # the body can be sent


def test_regex_errors_name_the_path_and_the_pattern() -> None:
    with pytest.raises(QueryError) as info:
        parse_filter({"name": {"$regex": "a(?=b)"}})
    assert info.value.message.startswith("'$regex' at 'name': pattern \"a(?=b)\": only '(?:'")
    assert "(at offset 1)" in info.value.message
    assert info.value.detail == {"path": "name", "operator": "$regex"}


def test_size_limits() -> None:
    deep: dict[str, Any] = {"a": 1}
    for _ in range(MAX_DEPTH):
        deep = {"$and": [deep]}
    with pytest.raises(QueryError, match="nested too deeply"):
        parse_filter(deep)
    with pytest.raises(QueryError, match="too large"):
        parse_filter({"a": {"$in": list(range(MAX_NODES))}})
    assert parse_filter({"a": {"$in": list(range(MAX_NODES - 3))}})  # {, {$in, [ ... ]}} fits
    with pytest.raises(QueryError, match="nested too deeply"):  # no RecursionError either
        nested: Any = 1
        for _ in range(100_000):
            nested = [nested]
        parse_filter({"a": nested})


# --- the reference evaluator -----------------------------------------------------------------

DOC: dict[str, Any] = {
    "name": "weather_lookup",
    "tags": ["weather", "utils", ["nested"]],
    "metadata": {
        "owner": {"team": "core", "size": 3},
        "cost": 0.5,
        "count": 2,
        "flag": True,
        "nothing": None,
        "list": [1, 2.5, "b", None, {"k": 1}],
        "0": "zero",
        "text": "line one\nline two",
    },
}

SEMANTICS: list[tuple[dict[str, Any], bool]] = [
    ({}, True),
    ({"name": "weather_lookup"}, True),
    ({"name": "WEATHER_lookup"}, False),
    ({"tags": "utils"}, True),  # any element
    ({"tags": ["nested"]}, True),  # an element that is itself an array
    ({"tags": "nested"}, False),  # one level only
    ({"tags": ["weather", "utils", ["nested"]]}, True),  # the whole array
    ({"tags": ["utils", "weather", ["nested"]]}, False),  # arrays are ordered
    ({"metadata.count": 2.0}, True),  # 2 == 2.0
    ({"metadata.flag": 1}, False),  # true != 1
    ({"metadata.flag": True}, True),
    ({"metadata.count": True}, False),
    ({"metadata.owner": {"size": 3.0, "team": "core"}}, True),  # key order, 3 == 3.0
    ({"metadata.owner": {"team": "core"}}, False),  # equality, not containment
    ({"metadata.nothing": None}, True),
    ({"metadata.absent": None}, True),  # null matches missing
    ({"metadata.cost": None}, False),
    ({"metadata.list": None}, True),  # an element is null
    ({"metadata.list": {"k": 1}}, True),
    ({"metadata.nothing": {"$exists": True}}, True),  # null is present
    ({"metadata.absent": {"$exists": False}}, True),
    ({"metadata.0": "zero"}, True),  # a key that looks like an index
    ({"tags.0": {"$exists": True}}, False),  # paths never index arrays
    ({"metadata.list.k": 1}, False),  # nor go through them
    ({"name.x": {"$exists": True}}, False),  # nor through scalars
    ({"metadata.absent": {"$ne": 1}}, True),
    ({"metadata.count": {"$ne": 2}}, False),
    ({"tags": {"$ne": "utils"}}, False),
    ({"metadata.count": {"$in": [5, 2]}}, True),
    ({"metadata.absent": {"$in": [None]}}, True),
    ({"metadata.count": {"$in": []}}, False),
    ({"metadata.count": {"$nin": [1, 3]}}, True),
    ({"metadata.absent": {"$nin": [1]}}, True),
    ({"tags": {"$all": ["utils", "weather"]}}, True),
    ({"tags": {"$all": ["utils", "x"]}}, False),
    ({"tags": {"$all": []}}, False),
    ({"name": {"$all": ["weather_lookup"]}}, False),  # not an array
    ({"metadata.count": {"$gt": 1, "$lt": 3}}, True),
    ({"metadata.count": {"$gte": 2.0, "$lte": 2}}, True),
    ({"metadata.count": {"$gt": "1"}}, False),  # number vs string never compares
    ({"metadata.flag": {"$gte": 0}}, False),  # booleans are not numbers
    ({"metadata.nothing": {"$lt": 1}}, False),
    ({"metadata.list": {"$gt": 2}}, True),  # 2.5
    ({"metadata.list": {"$gt": "a"}}, True),  # "b"
    ({"metadata.list": {"$gt": "c"}}, False),
    ({"metadata.owner": {"$gt": 0}}, False),
    ({"name": {"$gt": "Z"}}, True),  # code point order: "w" > "Z"
    ({"name": {"$lt": "weather_lookupa"}}, True),
    ({"metadata.absent": {"$lt": 1}}, False),
    ({"name": {"$regex": "^weather"}}, True),
    ({"name": {"$regex": "^WEATHER", "$options": "i"}}, True),
    ({"tags": {"$regex": "^ut"}}, True),  # any string element
    ({"metadata.count": {"$regex": "2"}}, False),  # numbers are not strings
    ({"metadata.text": {"$regex": "one$"}}, False),
    ({"metadata.text": {"$regex": "one$", "$options": "m"}}, True),
    ({"metadata.text": {"$regex": "one.line"}}, False),
    ({"metadata.text": {"$regex": "one.line", "$options": "s"}}, True),
    ({"metadata.absent": {"$not": {"$regex": "x"}}}, True),  # missing satisfies $not
    ({"metadata.count": {"$not": {"$gt": 1, "$lt": 3}}}, False),
    ({"metadata.count": {"$not": {"$gt": 1, "$lt": 2}}}, True),
    ({"$and": [{"name": "weather_lookup"}, {"tags": "x"}]}, False),
    ({"$or": [{"name": "x"}, {"tags": "utils"}]}, True),
    ({"$nor": [{"name": "x"}, {"tags": "y"}]}, True),
    ({"$nor": [{"name": "x"}, {"tags": "utils"}]}, False),
]


@pytest.mark.parametrize(("raw", "expected"), SEMANTICS)
def test_evaluator_semantics(raw: dict[str, Any], expected: bool) -> None:
    assert matches(parse_filter(raw), DOC) is expected


def test_json_equal() -> None:
    assert json_equal(1, 1.0) and json_equal(-0.0, 0)
    assert not json_equal(True, 1) and not json_equal(0, False) and json_equal(False, False)
    assert json_equal({"a": [1, {"b": None}]}, {"a": [1.0, {"b": None}]})
    assert not json_equal({"a": 1}, {"a": 1, "b": 2}) and not json_equal([1], [1, 1])
    assert not json_equal(None, "null") and not json_equal("1", 1) and not json_equal([], {})


# --- map_paths -------------------------------------------------------------------------------


def rename(path: str) -> str:
    return {"tool_search_tags": "tags", "tool_id": "name"}.get(path, path)


def test_map_paths_rewrites_every_path_and_no_operand() -> None:
    raw = {
        "tool_id": {"$regex": "^w"},
        "$or": [{"tool_search_tags": "a"}, {"$nor": [{"tool_search_tags": {"$in": ["b"]}}]}],
        "metadata": {"tool_id": 1},  # a literal object: its keys are data
        "x": {"$not": {"$eq": {"tool_id": 2}}},
    }
    assert map_paths(raw, rename) == {
        "name": {"$regex": "^w"},
        "$or": [{"tags": "a"}, {"$nor": [{"tags": {"$in": ["b"]}}]}],
        "metadata": {"tool_id": 1},
        "x": {"$not": {"$eq": {"tool_id": 2}}},
    }
    assert map_paths(raw, rename) is not raw and "tool_id" in raw


def test_map_paths_keeps_clashing_conditions() -> None:
    raw = {"tool_search_tags": "a", "tags": {"$ne": "b"}, "$and": [{"name": "n"}]}
    mapped = map_paths(raw, rename)
    assert mapped == {"tags": "a", "$and": [{"name": "n"}, {"tags": {"$ne": "b"}}]}
    f = parse_filter(mapped)
    assert matches(f, {"tags": ["a"], "name": "n"})
    assert not matches(f, {"tags": ["a", "b"], "name": "n"})


def test_map_paths_leaves_malformed_input_for_parse_filter() -> None:
    assert map_paths({"$or": "nope", "a": 1}, str.upper) == {"$or": "nope", "A": 1}
    with pytest.raises(QueryError, match="must be a JSON object"):
        map_paths([1], rename)


# --- the regex subset ------------------------------------------------------------------------

REGEX_CASES: list[tuple[str, str, str, bool]] = [
    ("", "", "", True),
    ("abc", "", "xxabcxx", True),
    ("^abc$", "", "abc\n", False),  # unlike Python's re, $ is the very end
    ("^b", "m", "a\nb", True),
    ("a$", "m", "a\nb", True),
    ("^b", "", "a\nb", False),
    ("a.b", "", "a\nb", False),
    ("a.b", "s", "a\nb", True),
    ("a[^x]b", "", "a\nb", True),  # classes are not newline-sensitive
    (r"\d+", "", "\u0663", False),  # ASCII digits only
    (r"\w", "", "é", False),
    (r"\bé", "", " é", False),  # é is not a word character
    (r"a\b", "", "aé", True),
    (r"a\B", "", "ab", True),
    (r"\B", "", "", True),
    (r"\s", "", "\u00a0", False),
    ("É", "i", "é", False),  # case folding is ASCII only
    ("k", "i", "\u212a", False),  # no Kelvin-sign folding
    ("[a-c]+X", "i", "BcAx", True),
    ("[^a]", "i", "A", False),
    ("a b # comment\n c", "x", "abc", True),
    (r"a\ b", "x", "a b", True),
    ("[ ]", "x", " ", True),  # whitespace inside a class stays
    ("(ab|cd){2}", "", "abcd", True),
    ("(ab|cd){3}", "", "abcd", False),
    ("a{2,}?c", "", "aaac", True),
    ("x(a|)y", "", "xy", True),
    (r"\x41\u00e9\.\{\}", "", "Aé.{}", True),
    ("[\\]\\[-]", "", "-", True),
    ("😀+", "", "x😀😀", True),
    ("(?:)*a", "", "a", True),
    ("(a*)*b", "", "a" * 30 + "c", False),
]


@pytest.mark.parametrize(("pattern", "options", "text", "expected"), REGEX_CASES)
def test_regex_subset_semantics(pattern: str, options: str, text: str, expected: bool) -> None:
    assert compile_regex(pattern, options).search(text) is expected


def test_regex_postgres_spelling_is_explicit() -> None:
    assert compile_regex("^a.b$").postgres == r"\Aa[^\u000a]b\Z"
    assert compile_regex("^a.b$", "ms").postgres == "(?w)^a.b$"
    assert compile_regex(r"\d|x", "i").postgres == "[0-9]|[Xx]"
    assert compile_regex(r"(?:ab)+?\b[^\s-]").postgres == r"(?:ab)+\y[^\u0009-\u000d\ \-]"
    assert compile_regex("a{2,5}(b|)é").postgres == "a{2,5}(?:b|(?:))é"


def test_regex_matching_is_linear_time() -> None:
    text = "a" * 20_000 + "c"
    started = time.perf_counter()
    for pattern in ["(a*)*b", "(a|a)*b", "(a|aa)+$x", "(?:a?){200}a{200}b"]:
        assert compile_regex(pattern).search(text) is False
    random_ab = "".join("ab"[(i * 7919) % 13 % 2] for i in range(5_000))
    assert compile_regex("(?:a|b)*a(?:a|b){200}c").search(random_ab) is False  # no DFA blow-up
    assert time.perf_counter() - started < 5  # a backtracking matcher would never finish


def test_compile_regex_rejects_unknown_options() -> None:
    with pytest.raises(RegexError, match="imsx"):
        compile_regex("a", "g")


# Differential test: our matcher against Python's re on the subset where their meanings agree
# (re.ASCII; no '$' without 'm' since re's '$' also matches before a final newline).
_ALPHABET = "aAbB_ \n1é"
_ATOMS = ["a", "b", "B", "_", " ", r"\n", "1", "é", ".", r"\d", r"\w", r"\s", r"\W", r"\S"]
_ATOMS += ["[ab]", "[^a]", "[a-c]", r"[\d_]", "[^\\n ]", r"\.", r"\b", r"\B", "^"]


@st.composite
def patterns(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        if depth < 2 and draw(st.integers(0, 4)) == 0:
            inner = [draw(patterns(depth + 1)) for _ in range(draw(st.integers(1, 3)))]
            atom = "(" + draw(st.sampled_from(["", "?:"])) + "|".join(inner) + ")"
        else:
            atom = draw(st.sampled_from(_ATOMS))
        if atom not in ("^", r"\b", r"\B"):
            atom += draw(st.sampled_from(["", "", "*", "+", "?", "{2}", "{0,2}", "{1,}", "*?"]))
        parts.append(atom)
    return "".join(parts)


@settings(max_examples=400, deadline=None)
@given(
    pattern=patterns(),
    flags=st.sets(st.sampled_from("ims")),
    dollar=st.booleans(),
    texts=st.lists(st.text(_ALPHABET, max_size=8), min_size=1, max_size=5),
)
def test_regex_agrees_with_python_re(
    pattern: str, flags: set[str], dollar: bool, texts: list[str]
) -> None:
    if dollar and "m" in flags:
        pattern += "$"
    py_flags = re.ASCII
    for letter, flag in (("i", re.IGNORECASE), ("m", re.MULTILINE), ("s", re.DOTALL)):
        if letter in flags:
            py_flags |= flag
    ours = compile_regex(pattern, "".join(sorted(flags)))
    theirs = re.compile(pattern, py_flags)
    for text in texts:
        if not text and r"\B" in pattern:
            continue  # re's \B never matches an empty string (PostgreSQL's \Y and ours do)
        assert ours.search(text) == bool(theirs.search(text)), (pattern, flags, text)
