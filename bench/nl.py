"""The no-LLM natural-language router on BFCL: function selection and full-call accuracy.

``python -m bench.nl [--quick]``. For every case of BFCL v4 ``simple_python``, ``multiple``,
``live_simple``, ``live_multiple`` and ``irrelevance`` (and, not a target, ``live_irrelevance``,
where several functions are offered and none fits) the functions the case offers become
toolrun ``Tool``s (BFCL's schema dialect converted: ``dict`` -> ``object``, ``float`` ->
``number``, ``tuple`` -> ``array``, ``any`` -> no type), and
:meth:`toolrun.nl.router.Router.plan` runs over only those functions, as BFCL offers them,
with the router's own fallback retriever (:class:`~toolrun.nl.router.OverlapRetriever`, word
overlap; no MiniLM, no BM25), its default ``min_fit`` and ``k``. Its extraction
(:func:`~toolrun.nl.extract.extract_arguments`) gives the arguments.

Scores: *selection* is the chosen function's name == the gold name (``irrelevance``,
``live_irrelevance``: the router answered no-fit); *full call* is selection right and the
arguments pass BFCL's AST rules as the data README restates them (every gold parameter
supplied with one of its allowed
values, or absent when ``""`` is allowed; no parameter outside the gold dict; strings compared
case-insensitively without spaces and ``,./-_*^``; an int accepted for a float; nested dicts
and lists checked element by element). Published figures are the BFCL v4 leaderboard's
(2025-12-16) AST accuracy of five small open models in native function-calling mode.
Each figure is also given for the *dev* half (even-numbered cases, on which the extractor's and
the ranking's rules were tuned) and the *held-out* half (odd-numbered cases), so a reader can
see how far the rules generalise. ``--quick`` takes a fixed sample of 50 cases per category.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from toolrun.nl.ranking import OverlapRetriever
from toolrun.nl.router import Router
from toolrun.registry.tool import Tool

BFCL = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "bfcl"
LEADERBOARD = BFCL / "leaderboard_v4_2025-12-16"
CATEGORIES = ("simple_python", "multiple", "live_simple", "live_multiple", "irrelevance")
# Not a target: several functions offered and none fits, where the ranking lead can mislead.
EXTRA = ("live_irrelevance",)
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
    "live_irrelevance": ("data_live.csv", "Irrelevance Detection"),
}
QUICK_SAMPLE = 50
# The rules were tuned on the even-numbered cases of each file ("dev"); the odd ones are held out.
HALVES: dict[str, Callable[[int], bool]] = {
    "all": lambda i: True,
    "dev": lambda i: i % 2 == 0,
    "held-out": lambda i: i % 2 == 1,
}
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
    """A BFCL function document as a toolrun ``Tool`` (the same document, the same tool)."""
    return _tool(json.dumps(function))


@lru_cache(maxsize=4096)
def _tool(document: str) -> Tool:
    function = json.loads(document)
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
    cases = list(enumerate(load(category)))
    if quick:
        cases = random.Random(f"bench-nl-{category}").sample(cases, min(QUICK_SAMPLE, len(cases)))
    outcomes: list[tuple[int, dict[str, bool]]] = []
    started = time.perf_counter()
    for index, (case, gold) in cases:
        outcomes.append((index, score_case(case, gold)))
    return {
        "category": category,
        "cases": len(cases),
        **{half: summarise([o for i, o in outcomes if keep(i)]) for half, keep in HALVES.items()},
        "seconds": time.perf_counter() - started,
    }


def score_case(case: Mapping[str, Any], gold: list[dict[str, Any]] | None) -> dict[str, bool]:
    """One case through ``Router.plan``: selection right, full call right, no call made
    (no fit, or required arguments missing), refused as no-fit."""
    functions = case["function"]
    store = CaseStore([to_tool(f) for f in functions or []])
    retriever = OverlapRetriever(store)  # type: ignore[arg-type]
    router = Router(store, sessions=None, retriever=retriever)  # type: ignore[arg-type]
    plan = router.plan(prompt_of(case))
    chosen = plan.tool
    refused = chosen is None
    no_call = refused or bool(plan.extraction.missing)
    if gold is None:  # (live_)irrelevance: right when the router says no fit
        return {"selected": refused, "full": refused, "no_call": no_call, "refused": refused}
    (gold_name, gold_args), *_ = gold[0].items()
    selected = chosen is not None and chosen.name == gold_name
    full = False
    if selected:
        raw = next(f for f in functions if f["name"] == gold_name)
        props = (raw.get("parameters") or {}).get("properties") or {}
        full = args_match(plan.extraction.arguments, gold_args, props)
    return {"selected": selected, "full": full, "no_call": no_call, "refused": refused}


def summarise(outcomes: Sequence[Mapping[str, bool]]) -> dict[str, float]:
    n = max(len(outcomes), 1)
    return {
        "selection": sum(o["selected"] for o in outcomes) / n,
        "full": sum(o["full"] for o in outcomes) / n,
        "no_call": sum(o["no_call"] for o in outcomes) / n,
        "refused": sum(o["refused"] for o in outcomes) / n,
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
    results = [run_category(c, quick) for c in (*CATEGORIES, *EXTRA)]
    models = published()
    names = [short(m) for m in MODELS]
    header = (
        f"{'category':<16} {'cases':>5} {'select':>6} {'dev':>5} {'held':>5}"
        f" {'full':>6} {'dev':>5} {'held':>5} {'target':>17}"
    )
    header += "".join(f" {n:>12}" for n in names)
    print(header)
    for r in results:
        target = TARGETS.get(r["category"])
        goal = f"{target[0]} >= {target[1]:.2f}" if target else ""
        line = (
            f"{r['category']:<16} {r['cases']:>5}"
            f" {r['all']['selection']:>6.3f} {r['dev']['selection']:>5.3f}"
            f" {r['held-out']['selection']:>5.3f}"
            f" {r['all']['full']:>6.3f} {r['dev']['full']:>5.3f} {r['held-out']['full']:>5.3f}"
            f" {goal:>17}"
        )
        line += "".join(f" {models[m].get(r['category'], float('nan')):>12.3f}" for m in MODELS)
        print(line)
    print(
        "select: chosen name == gold (irrelevance: no-fit). full: select and BFCL AST match of "
        "the arguments. dev: even-numbered cases (the rules were tuned on these), held: the "
        "odd-numbered ones. model columns: published BFCL v4 AST accuracy (full call)."
    )
    by = {r["category"]: r for r in results}
    refusals = ", ".join(
        f"{r['category']} {r['all']['refused']:.3f}"
        for r in results
        if not r["category"].endswith("irrelevance")
    )
    print(f"relevant cases refused as no-fit (part of the selection misses): {refusals}")
    irr = by["irrelevance"]["all"]
    print(
        f"irrelevance, no call at all (no-fit, or required arguments missing so nothing "
        f"runs): {irr['no_call']:.3f}"
    )
    for category, (metric, threshold) in TARGETS.items():
        key = "selection" if metric == "selection" else "full"
        value, held = by[category]["all"][key], by[category]["held-out"][key]
        verdict = "PASS" if value >= threshold else "MISS"
        print(
            f"{verdict} {category} {metric} {value:.3f} (held-out {held:.3f}; "
            f"target >= {threshold:.2f})"
        )
    print(f"time {sum(r['seconds'] for r in results):.1f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="50 sampled cases per category")
    main(quick=parser.parse_args().quick)
