"""The no-LLM natural-language router on BFCL: function selection and full-call accuracy.

``python -m bench.nl [--quick]``. For every case of BFCL v4 ``simple_python``, ``multiple``,
``live_simple``, ``live_multiple`` and ``irrelevance`` the functions the case offers become
toolrun ``Tool``s (BFCL's schema dialect converted: ``dict`` -> ``object``, ``float`` ->
``number``, ``tuple`` -> ``array``, ``any`` -> no type), and
:meth:`toolrun.nl.router.Router.plan` runs over only those functions, as BFCL offers them,
with the router's own fallback retriever (:class:`~toolrun.nl.router.OverlapRetriever`, word
overlap; no MiniLM, no BM25), its default ``min_fit`` and ``k``. Its extraction
(:func:`~toolrun.nl.extract.extract_arguments`) gives the arguments.

Scores: *selection* is the chosen function's name == the gold name (``irrelevance``: the
router answered no-fit); *full call* is selection right and the arguments pass BFCL's AST
rules as the data README restates them (every gold parameter supplied with one of its allowed
values, or absent when ``""`` is allowed; no parameter outside the gold dict; strings compared
case-insensitively without spaces and ``,./-_*^``; an int accepted for a float; nested dicts
and lists checked element by element). Published figures are the BFCL v4 leaderboard's
(2025-12-16) AST accuracy of five small open models in native function-calling mode.
``--quick`` takes a fixed sample of 50 cases per category.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from toolrun.nl.ranking import OverlapRetriever
from toolrun.nl.router import Router
from toolrun.registry.tool import Tool

BFCL = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "bfcl"
LEADERBOARD = BFCL / "leaderboard_v4_2025-12-16"
CATEGORIES = ("simple_python", "multiple", "live_simple", "live_multiple", "irrelevance")
# category -> (metric, threshold)
TARGETS = {
    "multiple": ("selection", 0.95),
    "live_multiple": ("selection", 0.85),
    "irrelevance": ("selection", 0.80),
    "simple_python": ("full call", 0.50),
}
MODELS = (
    "Qwen3-4B-Instruct-2507 (FC)",
    "Qwen3-1.7B (FC)",
    "Hammer2.1-1.5b (FC)",
    "xLAM-2-1b-fc-r (FC)",
    "Qwen3-0.6B (FC)",
)
# category -> (leaderboard file, column)
COLUMNS = {
    "simple_python": ("data_non_live.csv", "Python Simple AST"),
    "multiple": ("data_non_live.csv", "Multiple AST"),
    "irrelevance": ("data_non_live.csv", "Irrelevance Detection"),
    "live_simple": ("data_live.csv", "Python Simple AST"),
    "live_multiple": ("data_live.csv", "Python Multiple AST"),
}
QUICK_SAMPLE = 50
TYPES = {"dict": "object", "float": "number", "tuple": "array"}
DROPPED_KEYS = {"optional"}  # BFCL-only markers, not JSON Schema


# -- data --------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open() as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load(category: str) -> list[tuple[dict[str, Any], list[dict[str, Any]] | None]]:
    cases = read_jsonl(BFCL / f"BFCL_v4_{category}.json")
    gold_path = BFCL / "possible_answer" / f"BFCL_v4_{category}.json"
    gold = (
        {g["id"]: g["ground_truth"] for g in read_jsonl(gold_path)} if gold_path.is_file() else {}
    )
    return [(case, gold.get(case["id"])) for case in cases]


def prompt_of(case: Mapping[str, Any]) -> str:
    turn = case["question"][0]
    users = [m["content"] for m in turn if m.get("role") == "user"]
    return "\n".join(users) if users else str(turn[-1]["content"])


def convert_schema(schema: Any) -> Any:
    """BFCL's JSON-schema dialect to JSON Schema (recursively)."""
    if isinstance(schema, list):
        return [convert_schema(s) for s in schema]
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in DROPPED_KEYS:
            continue
        if key == "type" and isinstance(value, str):
            if value == "any":
                continue
            out[key] = TYPES.get(value, value)
        elif key == "properties" and isinstance(value, Mapping):
            out[key] = {name: convert_schema(spec) for name, spec in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = convert_schema(value)
        else:
            out[key] = value
    return out


def to_tool(function: Mapping[str, Any]) -> Tool:
    schema = convert_schema(function.get("parameters") or {"type": "dict", "properties": {}})
    schema.setdefault("type", "object")
    return Tool(
        name=function["name"],
        description=str(function.get("description") or ""),
        input_schema=schema,
    )


class CaseStore:
    """Just enough of :class:`~toolrun.storage.tool_store.ToolStore` for the router: the
    functions one BFCL case offers, in memory."""

    def __init__(self, tools: Sequence[Tool]) -> None:
        self.tools = {t.id: t for t in tools}

    def get(self, tool_id: str) -> Tool:
        return self.tools[tool_id]

    def query(self, where: Any = None, limit: int = 5000) -> list[Tool]:
        return list(self.tools.values())[:limit]


# -- BFCL's AST rules (as the data README states them) ------------------------------------------

_STRIP = re.compile(r"[ ,./\-_*^]")


def _norm(text: str) -> str:
    return _STRIP.sub("", text).lower()


def _spec(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def value_matches(value: Any, allowed: Any, spec: Mapping[str, Any]) -> bool:
    """One model value against one allowed gold value."""
    kind = spec.get("type")
    if isinstance(allowed, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(allowed, bool) and value == allowed
    if isinstance(allowed, int | float) and not isinstance(allowed, bool):
        if not isinstance(value, int | float):
            return False
        if kind == "integer" and not isinstance(value, int):
            return False
        if isinstance(allowed, int) and isinstance(value, float) and kind != "float":
            return False
        return float(value) == float(allowed)
    if isinstance(allowed, str):
        return isinstance(value, str) and _norm(value) == _norm(allowed)
    if isinstance(allowed, list):
        if not isinstance(value, list | tuple) or len(value) != len(allowed):
            return False
        items = _spec(spec.get("items"))
        return all(value_matches(v, a, items) for v, a in zip(value, allowed, strict=True))
    if isinstance(allowed, dict):
        if not isinstance(value, Mapping):
            return False
        return args_match(value, allowed, spec.get("properties") or {})
    return bool(value == allowed)


def args_match(
    arguments: Mapping[str, Any],
    gold: Mapping[str, Sequence[Any]],
    properties: Mapping[str, Any],
) -> bool:
    """Arguments against a gold dict ``{param: [allowed values]}``."""
    if any(name not in gold for name in arguments):
        return False
    for name, allowed in gold.items():
        spec = _spec(properties.get(name))
        if name not in arguments:
            if "" not in allowed:
                return False
            continue
        if not any(value_matches(arguments[name], a, spec) for a in allowed if a != ""):
            return False
    return True


# -- the run -----------------------------------------------------------------------------------


def run_category(category: str, quick: bool) -> dict[str, Any]:
    cases = load(category)
    if quick:
        cases = random.Random(f"bench-nl-{category}").sample(cases, min(QUICK_SAMPLE, len(cases)))
    selected = full = no_call = refused = 0
    started = time.perf_counter()
    for case, gold in cases:
        functions = case["function"]
        tools = [to_tool(f) for f in functions]
        store = CaseStore(tools)
        retriever = OverlapRetriever(store)  # type: ignore[arg-type]
        router = Router(store, sessions=None, retriever=retriever)  # type: ignore[arg-type]
        plan = router.plan(prompt_of(case))
        chosen = plan.tool
        if gold is None:  # irrelevance: right when the router says no fit
            selected += chosen is None
            full += chosen is None
            no_call += chosen is None or bool(plan.extraction.missing)
            continue
        (gold_name, gold_args), *_ = gold[0].items()
        refused += chosen is None
        if chosen is None or chosen.name != gold_name:
            continue
        selected += 1
        raw = next(f for f in functions if f["name"] == gold_name)
        props = (raw.get("parameters") or {}).get("properties") or {}
        full += args_match(plan.extraction.arguments, gold_args, props)
    return {
        "category": category,
        "cases": len(cases),
        "selection": selected / len(cases),
        "full": full / len(cases),
        "no_call": no_call / len(cases),
        "refused": refused / len(cases),
        "seconds": time.perf_counter() - started,
    }


def published() -> dict[str, dict[str, float]]:
    """model -> category -> published AST accuracy (0-1)."""
    tables: dict[str, dict[str, dict[str, str]]] = {}
    for name in {f for f, _ in COLUMNS.values()}:
        with (LEADERBOARD / name).open() as handle:
            tables[name] = {row["Model"]: row for row in csv.DictReader(handle)}
    out: dict[str, dict[str, float]] = {}
    for model in MODELS:
        out[model] = {}
        for category, (name, column) in COLUMNS.items():
            row = tables[name].get(model)
            if row is not None:
                out[model][category] = float(row[column].rstrip("%")) / 100
    return out


def short(model: str) -> str:
    return model.replace(" (FC)", "").replace("-Instruct-2507", "-Inst")


def main(quick: bool = False) -> None:
    print("== natural-language routing (no LLM), BFCL v4 ==")
    print(
        "router: Router.plan over each case's own functions, OverlapRetriever (word overlap), "
        "min_fit default; " + (f"quick: {QUICK_SAMPLE} sampled cases/category" if quick else "all")
    )
    results = [run_category(c, quick) for c in CATEGORIES]
    models = published()
    names = [short(m) for m in MODELS]
    header = f"{'category':<14} {'cases':>5} {'select':>7} {'full':>6} {'target':>17}"
    header += "".join(f" {n:>12}" for n in names)
    print(header)
    for r in results:
        target = TARGETS.get(r["category"])
        goal = f"{target[0]} >= {target[1]:.2f}" if target else ""
        line = (
            f"{r['category']:<14} {r['cases']:>5} {r['selection']:>7.3f} {r['full']:>6.3f}"
            f" {goal:>17}"
        )
        line += "".join(f" {models[m].get(r['category'], float('nan')):>12.3f}" for m in MODELS)
        print(line)
    print(
        "select: chosen name == gold (irrelevance: no-fit). full: select and BFCL AST match of "
        "the arguments. model columns: published BFCL v4 AST accuracy (full call)."
    )
    by = {r["category"]: r for r in results}
    refusals = ", ".join(
        f"{r['category']} {r['refused']:.3f}" for r in results if r["category"] != "irrelevance"
    )
    print(f"relevant cases refused as no-fit (part of the selection misses): {refusals}")
    irr = by["irrelevance"]
    print(
        f"irrelevance, no call at all (no-fit, or required arguments missing so nothing "
        f"runs): {irr['no_call']:.3f}"
    )
    for category, (metric, threshold) in TARGETS.items():
        value = by[category]["selection" if metric == "selection" else "full"]
        verdict = "PASS" if value >= threshold else "MISS"
        print(f"{verdict} {category} {metric} {value:.3f} (target >= {threshold:.2f})")
    print(f"time {sum(r['seconds'] for r in results):.1f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="50 sampled cases per category")
    main(quick=parser.parse_args().quick)
