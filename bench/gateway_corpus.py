"""The emulated tool-call parser: the reply corpus, its latency, and a BFCL round trip.

``python -m bench.gateway_corpus [--quick]``.

1. **Corpus** (``tests/data/gateway_corpus``): per family, the share of well-formed replies
   parsed exactly (calls, content, reasoning) and of malformed ones failing with their
   expected error; a call read from a malformed reply counts as *invented*.
2. **Latency**: :func:`toolrun.gateway.parse.parse_reply` per corpus reply (the tools are
   cached after the first reply, as in a server), p50 / p90 / max.
3. **BFCL round trip**: the function documents of every BFCL v4 case with gold answers become
   OpenAI tools (BFCL's dialect converted: ``dict`` -> ``object``, ``float`` -> ``number``,
   ``tuple`` -> ``array``, ``any`` -> no type); their rendered source must parse and run
   (pydantic builds each model); each gold call (its first acceptable value per parameter) is
   written the way a model would — Python in a fence, bare, Hermes JSON, reasoning then
   Python, a Llama list — and must parse back to the same calls (an explicit ``None`` for an
   optional parameter counts as left out). A gold answer that breaks its own schema is counted
   apart. This exercises real names (``math.factorial``) and schemas,
   not real model replies.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from toolrun.errors import CallError
from toolrun.gateway.parse import ParseError, parse_reply
from toolrun.gateway.prompt import call_source, render_tools
from toolrun.gateway.validate import OfferedTools

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "gateway_corpus"
BFCL = ROOT.parent / "shared" / "benchmarks" / "bfcl"
CATEGORIES = (
    "simple_python", "multiple", "parallel", "parallel_multiple",
    "live_simple", "live_multiple", "live_parallel", "live_parallel_multiple",
)  # fmt: skip
TYPES = {"dict": "object", "float": "number", "tuple": "array"}


# -- corpus -------------------------------------------------------------------------------------


def corpus() -> list[dict[str, Any]]:
    sets = yaml.safe_load((CORPUS / "tools.yaml").read_text())
    cases = []
    for path in sorted(CORPUS.glob("*.yaml")):
        if path.name != "tools.yaml":
            for entry in yaml.safe_load(path.read_text()):
                names = [entry["tools"]] if isinstance(entry["tools"], str) else entry["tools"]
                entry["tools"] = [tool for name in names for tool in sets[name]]
                cases.append({**entry, "family": path.stem})
    return cases


def outcome(case: dict[str, Any]) -> str:
    """``ok``, ``wrong`` or ``invented`` (a call read from a malformed reply)."""
    try:
        parsed = parse_reply(case["reply"], case["tools"])
    except ParseError as error:
        wanted = case.get("expected_error")
        return "ok" if wanted and wanted.lower() in error.message.lower() else "wrong"
    if "expected_error" in case:
        return "invented" if parsed.calls else "wrong"
    want = case["expected"]
    calls = [{"name": c.name, "arguments": c.arguments} for c in parsed.calls]
    same = (calls, parsed.content, parsed.reasoning) == (
        want.get("calls", []),
        want.get("content"),
        want.get("reasoning"),
    )
    return "ok" if same else "wrong"


def report_corpus(cases: list[dict[str, Any]]) -> None:
    print("== emulated tool calls: reply corpus ==")
    print(f"{'family':<12} {'cases':>5} {'exact':>7} {'invented':>8}")
    for family in sorted({c["family"] for c in cases}):
        results = Counter(outcome(c) for c in cases if c["family"] == family)
        total = sum(results.values())
        print(f"{family:<12} {total:>5} {results['ok'] / total:>7.1%} {results['invented']:>8}")
    well = [outcome(c) for c in cases if "expected" in c]
    bad = [outcome(c) for c in cases if "expected_error" in c]
    print(
        f"well-formed parsed exactly: {well.count('ok') / len(well):.1%} of {len(well)}; "
        f"malformed with their error: {bad.count('ok') / len(bad):.1%} of {len(bad)}; "
        f"invented calls: {bad.count('invented')}"
    )


def report_latency(cases: list[dict[str, Any]], repeat: int) -> None:
    timings = []
    for case in cases:
        _parse_quietly(case)  # the tools' caches are warm from here on, as in a server
        started = time.perf_counter()
        for _ in range(repeat):
            _parse_quietly(case)
        timings.append((time.perf_counter() - started) / repeat * 1e6)
    timings.sort()
    p90 = timings[int(len(timings) * 0.9)]
    print(
        f"parse latency per reply: p50 {statistics.median(timings):.0f} us, p90 {p90:.0f} us, "
        f"max {timings[-1]:.0f} us ({len(timings)} replies, {repeat} runs each)"
    )


def _parse_quietly(case: dict[str, Any]) -> None:
    with contextlib.suppress(ParseError):
        parse_reply(case["reply"], case["tools"])


# -- BFCL round trip ----------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open() as handle:
        return [json.loads(line) for line in handle if line.strip()]


def convert(schema: Any) -> Any:
    """BFCL's schema dialect as JSON Schema."""
    if isinstance(schema, list):
        return [convert(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: convert(v) for k, v in schema.items() if k != "optional"}
    if schema.get("type") == "any":
        del out["type"]
    elif isinstance(schema.get("type"), str):
        out["type"] = TYPES.get(schema["type"], schema["type"])
    if "properties" in schema:
        out["properties"] = {k: convert(v) for k, v in schema["properties"].items()}
    return out


def pick(options: Any) -> tuple[bool, Any]:
    """The first acceptable gold value: ``(False, None)`` when the parameter may be left out.
    (Inside nested dicts some gold values are given bare rather than as a list of options.)"""
    for value in options if isinstance(options, list) else [options]:
        if value == "":
            continue
        if isinstance(value, dict):  # a nested dict: its values are lists of options again
            return True, {k: v for k, (keep, v) in ((k, pick(o)) for k, o in value.items()) if keep}
        return True, value
    return False, None


STYLES: dict[str, Callable[[list[str], list[dict[str, Any]]], str]] = {
    "fenced": lambda src, _: "I'll call the function.\n\n```python\n" + "\n".join(src) + "\n```",
    "bare": lambda src, _: "\n".join(src),
    "hermes": lambda _, calls: "\n".join(
        f"<tool_call>\n{json.dumps(c)}\n</tool_call>" for c in calls
    ),
    "think": lambda src, _: (
        "<think>\nThe user asks; use the tools.\n</think>\n\n```python\n" + "\n".join(src) + "\n```"
    ),
    "llama-list": lambda src, _: "[" + ", ".join(src) + "]",
}


def round_trip(quick: bool) -> None:
    print("== emulated tool calls: BFCL v4 round trip (gold calls written as replies) ==")
    print(
        f"{'category':<24} {'cases':>5} {'source ok':>9} {'parsed ok':>9}"
        f" {'gold breaks schema':>18}"
    )
    totals: Counter[str] = Counter()
    for category in CATEGORIES:
        cases = read_jsonl(BFCL / f"BFCL_v4_{category}.json")
        gold = {
            g["id"]: g["ground_truth"]
            for g in read_jsonl(BFCL / "possible_answer" / f"BFCL_v4_{category}.json")
        }
        cases = [c for c in cases if c["id"] in gold][: 40 if quick else None]
        counts: Counter[str] = Counter()
        for index, case in enumerate(cases):
            tools = [{"type": "function", "function": convert(f)} for f in case["function"]]
            counts[check_source(tools)] += 1
            counts[check_calls(tools, gold[case["id"]], list(STYLES)[index % len(STYLES)])] += 1
        totals.update(counts)
        n = len(cases)
        print(
            f"{category:<24} {n:>5} {counts['source'] / n:>9.1%} "
            f"{counts['parsed'] / max(1, n - counts['schema']):>9.1%} {counts['schema']:>18}"
        )
    other = {k: v for k, v in totals.items() if k not in ("source", "parsed", "schema")}
    print(f"other outcomes (failures): {other}")


def check_source(tools: list[dict[str, Any]]) -> str:
    try:
        source = render_tools(tools).source
        exec(compile(ast.parse(source), "<tools>", "exec", dont_inherit=True), {})
    except Exception as error:  # a bench reports every kind of failure
        return f"source error: {type(error).__name__}"
    return "source"


def check_calls(tools: list[dict[str, Any]], gold: list[dict[str, Any]], style: str) -> str:
    offered = OfferedTools.from_openai(tools)
    wanted, sources = [], []
    for call in gold:
        ((name, params),) = call.items()
        args = {k: v for k, (keep, v) in ((k, pick(o)) for k, o in params.items()) if keep}
        wanted.append({"name": name, "arguments": args})
        sources.append(call_source(name, args, offered.lookup(name)))
    reply = STYLES[style](sources, wanted)
    try:
        parsed = parse_reply(reply, offered)
    except ParseError as error:
        checks = [_valid(offered, w) for w in wanted]
        return "schema" if not all(checks) else f"{style}: {error.message[:60]}"
    got = [{"name": c.name, "arguments": c.arguments} for c in parsed.calls]
    return "parsed" if got == [_without_none(w) for w in wanted] else f"{style}: different calls"


def _without_none(call: dict[str, Any]) -> dict[str, Any]:
    """The parser drops an explicit ``None`` for an optional parameter: gold ``None`` (BFCL's
    "the default") is the same as leaving it out."""
    return {**call, "arguments": {k: v for k, v in call["arguments"].items() if v is not None}}


def _valid(offered: OfferedTools, call: dict[str, Any]) -> bool:
    try:
        offered.check(call["name"], (), call["arguments"], json_names=True)
    except CallError:
        return False
    return True


def main(quick: bool = False) -> None:
    cases = corpus()
    report_corpus(cases)
    report_latency(cases, repeat=20 if quick else 200)
    round_trip(quick)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="40 BFCL cases per category")
    main(quick=parser.parse_args().quick)
