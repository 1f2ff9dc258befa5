"""The emulated tool-call parser: the reply corpus (rates asserted) and its rules one by one."""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolrun.errors import CallError
from toolrun.gateway.parse import (
    ParsedReply,
    ParseError,
    ToolCall,
    new_call_id,
    parse_reply,
)
from toolrun.gateway.validate import OfferedTools

CORPUS = Path(__file__).parent / "data" / "gateway_corpus"
TOOL_SETS: dict[str, list[dict[str, Any]]] = yaml.safe_load((CORPUS / "tools.yaml").read_text())
MIN_CASES = 150
MIN_RATE = 0.98


@dataclass(frozen=True)
class Case:
    family: str
    id: str
    tools: list[dict[str, Any]]
    reply: str
    expected: dict[str, Any] | None
    expected_error: str | None


def _tools(names: str | list[str]) -> list[dict[str, Any]]:
    return [
        tool for name in ([names] if isinstance(names, str) else names) for tool in TOOL_SETS[name]
    ]


def load_corpus() -> list[Case]:
    cases = []
    for path in sorted(CORPUS.glob("*.yaml")):
        if path.name == "tools.yaml":
            continue
        for entry in yaml.safe_load(path.read_text()):
            json.dumps(entry)  # a date or other YAML-only value in an entry is a corpus bug
            assert set(entry) <= {"id", "tools", "reply", "expected", "expected_error"}, entry
            assert ("expected" in entry) != ("expected_error" in entry), entry["id"]
            cases.append(
                Case(
                    path.stem,
                    entry["id"],
                    _tools(entry["tools"]),
                    entry["reply"],
                    entry.get("expected"),
                    entry.get("expected_error"),
                )
            )
    return cases


CASES = load_corpus()
WELL_FORMED = [c for c in CASES if c.expected is not None]
MALFORMED = [c for c in CASES if c.expected_error is not None]


def counting_ids() -> Any:
    counter = itertools.count(1)
    return lambda: f"call_{next(counter):024x}"


def parse(case: Case) -> ParsedReply:
    return parse_reply(case.reply, case.tools, new_id=counting_ids())


def mismatch(case: Case) -> str | None:
    """Why ``case`` is not parsed exactly as expected (``None``: it is)."""
    assert case.expected is not None
    try:
        parsed = parse(case)
    except ParseError as error:
        return f"ParseError: {error.message}"
    calls = [{"name": c.name, "arguments": c.arguments} for c in parsed.calls]
    want = case.expected
    problems = []
    if calls != want.get("calls", []):
        problems.append(f"calls {calls} != {want.get('calls', [])}")
    if parsed.content != want.get("content"):
        problems.append(f"content {parsed.content!r} != {want.get('content')!r}")
    if parsed.reasoning != want.get("reasoning"):
        problems.append(f"reasoning {parsed.reasoning!r} != {want.get('reasoning')!r}")
    return "; ".join(problems) or None


def malformed_outcome(case: Case) -> str | None:
    """``None`` when ``case`` fails with a ParseError naming its problem; else what happened."""
    assert case.expected_error is not None
    try:
        parsed = parse(case)
    except ParseError as error:
        if case.expected_error.lower() in error.message.lower():
            return None
        return f"wrong error: {error.message!r} lacks {case.expected_error!r}"
    return f"INVENTED {len(parsed.calls)} call(s)" if parsed.calls else "no error, no calls"


# -- the corpus ---------------------------------------------------------------------------------


def test_corpus_is_large_and_diverse() -> None:
    families = Counter(c.family for c in CASES)
    print(
        f"\ncorpus: {len(CASES)} replies, {len(MALFORMED)} malformed; by family: {dict(families)}"
    )
    assert len(CASES) >= MIN_CASES
    assert len({c.id for c in CASES}) == len(CASES), "case ids repeat"
    assert len(MALFORMED) >= 25
    assert all(count >= 10 for count in families.values()), families


def test_well_formed_replies_parse_exactly() -> None:
    failures = {c.id: why for c in WELL_FORMED if (why := mismatch(c)) is not None}
    rate = 1 - len(failures) / len(WELL_FORMED)
    print(f"\nwell-formed parsed exactly: {rate:.1%} of {len(WELL_FORMED)}")
    assert rate >= MIN_RATE, "\n".join(f"{k}: {v}" for k, v in failures.items())


def test_malformed_replies_are_errors_and_never_calls() -> None:
    outcomes = {c.id: why for c in MALFORMED if (why := malformed_outcome(c)) is not None}
    invented = [k for k, v in outcomes.items() if v.startswith("INVENTED")]
    rate = 1 - len(outcomes) / len(MALFORMED)
    print(
        f"\nmalformed with the expected error: {rate:.1%} of {len(MALFORMED)};"
        f" invented calls: {len(invented)}"
    )
    assert not invented, invented
    assert not outcomes, "\n".join(f"{k}: {v}" for k, v in outcomes.items())


def test_typical_reply_parses_well_under_a_millisecond() -> None:
    """A loose bound for the hot path (a quiet machine takes tens of microseconds)."""
    case = next(c for c in CASES if c.id == "fenced-prose-both-sides")
    parse(case)  # warm the caches
    started = time.perf_counter()
    for _ in range(200):
        parse(case)
    assert (time.perf_counter() - started) / 200 < 0.001


# -- rules one by one ---------------------------------------------------------------------------

WEATHER = TOOL_SETS["weather"]
TWO_CALLS = 'get_weather(city="Paris")\nget_weather(city="Rome")'


def test_each_call_gets_its_own_openai_style_id() -> None:
    parsed = parse_reply(TWO_CALLS, WEATHER)
    ids = [call.id for call in parsed.calls]
    assert len(set(ids)) == 2
    assert all(re.fullmatch(r"call_[0-9a-f]{24}", i) for i in ids)
    assert re.fullmatch(r"call_[0-9a-f]{24}", new_call_id())


def test_ids_are_unique_even_when_the_generator_repeats() -> None:
    ids = iter(["call_a", "call_a", "call_b"])
    parsed = parse_reply(TWO_CALLS, WEATHER, new_id=lambda: next(ids))
    assert [call.id for call in parsed.calls] == ["call_a", "call_b"]


def test_a_call_in_openai_shape() -> None:
    call = ToolCall("call_1", "translate", {"text": "Grüß Gott"})
    assert call.to_openai() == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "translate", "arguments": '{"text": "Grüß Gott"}'},
    }


def test_parsing_is_deterministic() -> None:
    case = next(c for c in CASES if c.id == "think-long-multi-paragraph")
    assert parse(case) == parse(case)


def test_parallel_calls_can_be_refused() -> None:
    with pytest.raises(ParseError, match="parallel tool calls are disabled, but the reply makes 2"):
        parse_reply(TWO_CALLS, WEATHER, parallel=False)
    assert len(parse_reply('get_weather(city="Paris")', WEATHER, parallel=False).calls) == 1


def test_without_tools_everything_is_content() -> None:
    parsed = parse_reply("<think>no tools</think>\nget_weather(city='Paris')", [])
    assert parsed == ParsedReply((), "get_weather(city='Paris')", "no tools")


def test_prebuilt_offered_tools_are_accepted() -> None:
    offered = OfferedTools.from_openai(WEATHER)
    assert offered is OfferedTools.from_openai(WEATHER)  # cached by content
    assert parse_reply('get_weather("Oslo")', offered).calls[0].arguments == {"city": "Oslo"}


def test_a_parse_error_is_a_call_error_with_its_line() -> None:
    with pytest.raises(ParseError) as caught:
        parse_reply('Checking.\n\n```python\nget_weather(city="Paris"\n```', WEATHER)
    error = caught.value
    assert isinstance(error, CallError)
    assert error.line == 4
    assert error.status_code == 422
    assert error.to_dict()["error"]["type"] == "invalid_tool_call"


def test_schema_violations_carry_every_violation() -> None:
    with pytest.raises(ParseError) as caught:
        parse_reply('get_forecast(city=3, days="x")', WEATHER)
    paths = [v["path"] for v in caught.value.detail["violations"]]
    assert paths == ["/city", "/days"]


def test_nothing_in_a_reply_is_ever_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    replies = [
        f"read_file(path=open({str(marker)!r}, 'w').write('x'))",
        f"```python\nread_file(path=__import__('pathlib').Path({str(marker)!r}).touch())\n```",
        f"```python\nx = open({str(marker)!r}, 'w')\nread_file(path='a')\n```",
    ]
    for reply in replies:
        with pytest.raises(ParseError):
            parse_reply(reply, TOOL_SETS["dev"])
    assert not marker.exists()


def test_explicit_none_is_kept_where_the_schema_accepts_null() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "tag",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "label": {"type": ["string", "null"]},
                        "color": {"type": "string"},
                    },
                },
            },
        }
    ]
    parsed = parse_reply("tag(label=None, color=None)", tools)
    assert parsed.calls[0].arguments == {"label": None}


def test_extra_arguments_pass_only_when_the_schema_allows_them() -> None:
    def tool(extra: Any) -> list[dict[str, Any]]:
        schema = {"type": "object", "properties": {"q": {"type": "string"}}}
        if extra is not None:
            schema["additionalProperties"] = extra
        return [{"type": "function", "function": {"name": "find", "parameters": schema}}]

    with pytest.raises(ParseError, match="has no parameter 'limit'"):
        parse_reply('find(q="x", limit=3)', tool(None))
    assert parse_reply('find(q="x", limit=3)', tool(True)).calls[0].arguments == {
        "q": "x",
        "limit": 3,
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_text_gives_a_reply_or_a_parse_error(text: str) -> None:
    try:
        parsed = parse_reply(text, WEATHER)
    except ParseError:
        return
    assert all(call.name in ("get_weather", "get_forecast") for call in parsed.calls)


FRAGMENTS = [
    "get_weather(", "get_forecast(", "city=", '"Paris"', "days=3", "'", '"', ")", "(", "[", "]",
    "{", "}", ",", "\n", "```python\n", "```", "<think>", "</think>", "<tool_call>",
    "</tool_call>", "[TOOL_CALLS]", "[ARGS]", "functools", "<|python_tag|>", "print(", "x = ",
    "x", "true", "None", "-1e5", "#", "\\", '"""', "`", " ", '"name": "get_weather"',
    '"arguments": ', "**", "*", "lambda", "import os", "\x00", "\t", "def ", "for ", "dict(",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=30))
def test_reply_shaped_noise_gives_a_reply_or_a_parse_error(pieces: list[str]) -> None:
    with contextlib.suppress(ParseError):
        parse_reply("".join(pieces), WEATHER)


def test_pathological_replies_stay_linear() -> None:
    replies = ["<think>" * 20000, "<tool_call>" * 5000, "```python\n" * 20000, "[" * 50000]
    for reply in replies:
        started = time.perf_counter()
        with contextlib.suppress(ParseError):
            parse_reply(reply, WEATHER)
        assert time.perf_counter() - started < 2.0, reply[:20]
