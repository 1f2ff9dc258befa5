"""Tool retrieval: quality on BFCL (pooled registry) and APIBench, latency, build cost.

``python -m bench.retrieval [--quick]``. Quality: recall@1/5/10 and nDCG@10 of BM25, dense
(all-MiniLM-L6-v2) and hybrid, scored the way the benchmarks' READMEs say (BFCL by function
name, best variant; APIBench by ``hub|tool_key``). The READMEs' plain BM25 baselines are
measured again in the same run (their recipe: lowercase alphanumeric tokens, k1 1.5, b 0.75,
their document text) beside the figures they publish. The hybrid weight was chosen on the
even-numbered queries of both benchmarks; every row shows the even and odd halves, and the
full run prints the sweep. The same for the optional second stage (``toolrun.retrieval.rerank``:
word match over the hybrid's top 40), off by default, whose row and sweep are printed too.

Latency: one hybrid search (top 10, the query's embedding included, no query cache) at 1k,
10k and 100k tools made by replicating the BFCL corpus with perturbed text and jittered
vectors; then the same with the query's embedding cached, with and without the second stage.
Embeddings of the corpora are
cached under ``$TMPDIR/toolrun-bench-retrieval`` so reruns are fast.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolrun.retrieval.bm25 import BM25
from toolrun.retrieval.cache import EmbeddingCache
from toolrun.retrieval.embedder import MiniLMEmbedder
from toolrun.retrieval.index import DEFAULT_ALPHA, MODES, Entry, ToolIndex
from toolrun.retrieval.rerank import RERANK, Rerank
from toolrun.retrieval.text import document_text, words

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
CACHE = Path(tempfile.gettempdir()) / "toolrun-bench-retrieval" / "minilm"
PUBLISHED = {
    "bfcl": (64.3, 87.6, 91.4, 80.0),
    "apibench": (13.0, 28.9, 36.5, 23.9),
}
ALPHAS = (0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8)
RERANKS = (  # (match, name) weights of the second stage tried
    (0.0, 0.0),
    (0.05, 0.1),
    (0.1, 0.1),
    (0.1, 0.2),
    (0.1, 0.3),
    (0.15, 0.0),
    (0.15, 0.15),
    (0.15, 0.2),
    (0.2, 0.1),
    (0.2, 0.2),
)
ABLATIONS = (  # label, mode, centred dense, stemmed BM25
    ("ablation: dense, plain cosine", "dense", False, True),
    ("ablation: bm25, unstemmed", "bm25", True, False),
    ("ablation: hybrid, plain cosine", "hybrid", False, True),
    ("ablation: hybrid, unstemmed BM25", "hybrid", True, False),
    ("ablation: hybrid, neither (the previous index)", "hybrid", False, False),
)
COLUMNS = ("R@1", "R@5", "R@10", "nDCG@10")


@dataclass
class Dataset:
    name: str
    entries: list[Entry]
    keys: dict[str, str]  # tool id -> what is scored (function name, hub|tool_key)
    queries: list[tuple[str, set[str]]]
    baseline_text: dict[str, str]  # tool id -> the README baseline's document text
    baseline_label: str


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open() as handle:
        return [json.loads(line) for line in handle if line.strip()]


def bfcl() -> Dataset:
    root = SHARED / "bfcl" / "derived"
    entries, keys, baseline = [], {}, {}
    for row in read_jsonl(root / "pooled_functions.jsonl"):
        fn = row["function"]
        text = document_text(fn["name"], fn.get("description", ""), fn.get("parameters"))
        entries.append(Entry(row["tool_id"], text))
        keys[row["tool_id"]] = row["name"]
        baseline[row["tool_id"]] = f"{fn['name']} {json.dumps(fn)}"
    queries = [
        (q["query"], set(q["gold_names"]))
        for q in read_jsonl(root / "pooled_queries.jsonl")
        if q["gold_names"]
    ]
    return Dataset("bfcl", entries, keys, queries, baseline, "name + full JSON schema")


def apibench_text(doc: dict[str, Any]) -> str:
    parts = [doc.get(f) for f in ("domain", "functionality", "description", "api_call")]
    body = "\n".join(str(p) for p in parts if p and p != "N/A")
    return document_text(str(doc.get("api_name", "")), body)


def apibench() -> Dataset:
    root = SHARED / "apibench"
    entries, keys, baseline = [], {}, {}
    for row in read_jsonl(root / "corpus.jsonl"):
        doc = row["doc"]
        entries.append(Entry(row["tool_id"], apibench_text(doc)))
        keys[row["tool_id"]] = f"{row['hub']}|{row['tool_key']}"
        fields = ("api_name", "domain", "functionality", "description")
        baseline[row["tool_id"]] = " ".join(str(doc.get(f) or "") for f in fields)
    queries = [
        (q["query"], {f"{q['hub']}|{q['gold_tool_key']}"})
        for q in read_jsonl(root / "queries.jsonl")
    ]
    label = "name+domain+functionality+description"
    return Dataset("apibench", entries, keys, queries, baseline, label)


def score(ranked: Sequence[str], gold: set[str]) -> dict[str, float]:
    out = {f"R@{k}": float(any(r in gold for r in ranked[:k])) for k in (1, 5, 10)}
    dcg = sum(1 / math.log2(i + 2) for i, r in enumerate(ranked[:10]) if r in gold)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(gold), 10)))
    out["nDCG@10"] = dcg / ideal
    return out


Scores = list[dict[str, float]]  # one row per query


def per_query(
    rank: Callable[[str], Sequence[str]], keys: dict[str, str], queries: list[tuple[str, set[str]]]
) -> Scores:
    """Score each query's ranking of tool ids, collapsed to keys (best variant first)."""
    rows = []
    for text, gold in queries:
        ranked: list[str] = []
        for tool_id in rank(text):
            key = keys[tool_id]
            if key not in ranked:
                ranked.append(key)
        rows.append(score(ranked, gold))
    return rows


def mean(rows: Scores, half: str = "all") -> dict[str, float]:
    picked = rows if half == "all" else rows[0 if half == "even" else 1 :: 2]
    return {c: 100 * sum(r[c] for r in picked) / len(picked) for c in COLUMNS}


def line(label: str, rows: Scores) -> str:
    whole = mean(rows)
    halves = " / ".join(f"{mean(rows, h)['R@5']:.1f}" for h in ("even", "odd"))
    return (
        f"  {label:<56} "
        + " ".join(f"{whole[c]:>6.1f}" for c in COLUMNS[:3])
        + f" {whole['nDCG@10']:>8.1f}   {halves}"
    )


_PLAIN = re.compile(r"[a-z0-9]+")


def readme_bm25(data: Dataset) -> Callable[[str], list[str]]:
    """The READMEs' baseline: lowercase alphanumeric tokens, k1 1.5, b 0.75."""
    ids = list(data.baseline_text)
    bm25 = BM25(k1=1.5, b=0.75, tokenizer=lambda text: _PLAIN.findall(text.lower()))
    for slot, tool_id in enumerate(ids):
        bm25.add(slot, data.baseline_text[tool_id])

    def rank(query: str) -> list[str]:
        scores = bm25.scores(query, len(ids))
        top = np.argsort(-scores, kind="stable")[:60]
        return [ids[s] for s in top if scores[s] > 0]

    return rank


def build(
    data: Dataset, cache: EmbeddingCache, *, centre: bool = True, stemmed: bool = True
) -> ToolIndex:
    index = ToolIndex(cache=cache, centre=centre)
    if not stemmed:
        index.bm25 = BM25(tokenizer=words)
    index.upsert_many(data.entries)
    return index


def ranker(index: ToolIndex, **options: Any) -> Callable[[str], list[str]]:
    def rank(query: str) -> list[str]:
        return [hit.tool_id for hit in index.search(query, 60, **options)]

    return rank


def quality(cache: EmbeddingCache, quick: bool) -> dict[str, dict[float, Scores]]:
    sweeps: dict[str, dict[float, Scores]] = {}
    reranks: dict[str, dict[tuple[float, float], Scores]] = {}
    for data in (bfcl(), apibench()):
        queries = data.queries[::10] if quick else data.queries
        started = time.perf_counter()
        before = cache.embedded
        index = build(data, cache)
        cache.embed([q for q, _ in queries])  # batch the query embeddings once
        cache.save()
        built = time.perf_counter() - started
        print(
            f"\n{data.name}: {len(data.entries)} documents, {len(set(data.keys.values()))} "
            f"keys, {len(queries)} queries; indexed in {built:.1f} s "
            f"({cache.embedded - before} texts embedded, the rest cached)"
        )
        print(
            f"  {'retriever':<56} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'nDCG@10':>8}   R@5 even / odd"
        )
        published = dict(zip(COLUMNS, PUBLISHED[data.name], strict=True))
        print(
            f"  {'BM25 baseline, README (' + data.baseline_label + ')':<56} "
            + " ".join(f"{published[c]:>6.1f}" for c in COLUMNS[:3])
            + f" {published['nDCG@10']:>8.1f}"
        )
        baseline = per_query(readme_bm25(data), data.keys, queries)
        print(line("BM25 baseline, README recipe, this run", baseline))
        for mode in MODES[::-1]:
            rows = per_query(ranker(index, mode=mode), data.keys, queries)
            label = f"hybrid (alpha {DEFAULT_ALPHA})" if mode == "hybrid" else mode
            print(line(label, rows))
        rows = per_query(ranker(index, rerank=RERANK), data.keys, queries)
        label = f"hybrid + word-match rerank ({RERANK.match}, {RERANK.name}; opt-in)"
        print(line(label, rows))
        if not quick:
            for label, how, centre, stemmed in ABLATIONS:
                variant = build(data, cache, centre=centre, stemmed=stemmed)
                print(line(label, per_query(ranker(variant, mode=how), data.keys, queries)))
            sweeps[data.name] = {
                alpha: per_query(ranker(index, alpha=alpha), data.keys, queries) for alpha in ALPHAS
            }
            reranks[data.name] = {
                weights: per_query(
                    ranker(index, rerank=Rerank(*weights, depth=RERANK.depth)), data.keys, queries
                )
                for weights in RERANKS
            }
    if sweeps:
        print("\nhybrid weight sweep, R@5 on the even queries (where alpha was picked) | odd")
        print_sweep("alpha", sweeps)
        print(
            f"\nsecond stage (match, name) weights over the top {RERANK.depth}, alpha "
            f"{DEFAULT_ALPHA}, R@5 on the even queries (where they were picked) | odd"
        )
        print_sweep("weights", reranks)
    return sweeps


def print_sweep(label: str, sweeps: dict[str, dict[Any, Scores]]) -> None:
    print(f"  {label:>12} " + " ".join(f"{name:>18}" for name in sweeps) + f" {'mean':>14}")
    for value in next(iter(sweeps.values())):
        even = [mean(s[value], "even")["R@5"] for s in sweeps.values()]
        odd = [mean(s[value], "odd")["R@5"] for s in sweeps.values()]
        cells = " ".join(f"{e:>10.2f} | {o:>5.2f}" for e, o in zip(even, odd, strict=True))
        shown = ", ".join(map(str, value)) if isinstance(value, tuple) else str(value)
        print(f"  {shown:>12} {cells} {sum(even) / len(even):>6.2f} | {sum(odd) / len(odd):>5.2f}")


class Precomputed:
    """An embedder answering from a table (synthetic corpora), the model for anything else."""

    def __init__(self, model: MiniLMEmbedder, table: dict[str, np.ndarray]) -> None:
        self.name, self.dim, self.model, self.table = "precomputed", model.dim, model, table

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if all(t in self.table for t in texts):
            return np.stack([self.table[t] for t in texts]) if texts else np.zeros((0, self.dim))
        return self.model.embed(texts)


def synthetic(entries: list[Entry], cache: EmbeddingCache, size: int) -> dict[str, np.ndarray]:
    base = cache.embed([e.text for e in entries])
    rng = np.random.default_rng(size)
    table: dict[str, np.ndarray] = {}
    words = [w for e in entries[:200] for w in e.text.split()[:5]]
    for i in range(size):
        j = i % len(entries)
        text = (
            entries[j].text
            if i < len(entries)
            else (f"{entries[j].text} {' '.join(rng.choice(words, 3))} v{i}")
        )
        vec = base[j] + (rng.normal(0, 0.02, base.shape[1]) if i >= len(entries) else 0)
        table[text] = (vec / np.linalg.norm(vec)).astype(np.float32)
    return table


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def rss_mb() -> float:
    """Resident memory of this process (Linux), 0 where unknown."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def latency(model: MiniLMEmbedder, cache: EmbeddingCache, quick: bool) -> None:
    data = bfcl()
    sizes = (1_000, 10_000) if quick else (1_000, 10_000, 100_000)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"\nlatency of one search, top 10, in ms ({os.cpu_count()} CPUs, load average "
        f"{load:.1f} at the start; MiniLM on {model.backend}, one thread). hybrid: the "
        "query embedded; embed: that alone; cached: the same query again (query cache); +rerank: "
        "cached, with the second stage"
    )
    print(
        f"  {'tools':>8} {'hybrid p50':>10} {'p99':>6} {'embed p50':>9} {'cached p50':>10} "
        f"{'+rerank p50':>11} {'bm25 p50':>9} {'build s':>8} {'RSS +MB':>8} {'matrix MB':>9}"
    )
    texts = list(dict.fromkeys(q for q, _ in data.queries))
    step = max(1, len(texts) // (100 if quick else 300))
    sample, warm_up = texts[::step], texts[1::step][:5]
    for size in sizes:
        table = synthetic(data.entries, cache, size)
        items = [Entry(f"t{i}", text) for i, text in enumerate(table)]
        before = rss_mb()
        started = time.perf_counter()
        index = ToolIndex(Precomputed(model, table), query_cache=1)
        index.upsert_many(items, batch=4096)
        built = time.perf_counter() - started
        grown = rss_mb() - before
        times = timed(search_calls(index, model), sample, warm_up)
        p50 = {name: percentile(values, 0.5) for name, values in times.items()}
        print(
            f"  {size:>8} {p50['hybrid']:>10.2f} {percentile(times['hybrid'], 0.99):>6.1f} "
            f"{p50['embed']:>9.2f} {p50['cached']:>10.2f} {p50['rerank']:>11.2f} "
            f"{p50['bm25']:>9.2f} "
            f"{built:>8.2f} {grown:>8.0f} {index.matrix.nbytes / 1e6:>9.0f}"
        )
        del index, table, items
    documents = [e.text for e in data.entries[:128]]
    started = time.perf_counter()
    model.embed(documents)
    rate = len(documents) / (time.perf_counter() - started)
    print(
        f"  embedding documents: {rate:.0f}/s (BFCL, batch 32). Build excludes embedding "
        "(vectors precomputed); RSS +MB is the process's growth while building (the index "
        "with its postings and its in-memory embedding cache)"
    )


def search_calls(index: ToolIndex, model: MiniLMEmbedder) -> dict[str, Callable[[str], object]]:
    def hybrid(query: str) -> object:
        return index.search(query, 10)

    def bm25(query: str) -> object:
        return index.search(query, 10, mode="bm25")

    def rerank(query: str) -> object:
        return index.search(query, 10, rerank=RERANK)

    def embed(query: str) -> object:
        return model.embed([query])

    # a new query is embedded; the same one again comes from the query cache (of size 1)
    return {"hybrid": hybrid, "cached": hybrid, "rerank": rerank, "bm25": bm25, "embed": embed}


def timed(
    calls: dict[str, Callable[[str], object]], queries: list[str], warm_up: list[str]
) -> dict[str, list[float]]:
    """Milliseconds of each call for each query, the calls interleaved query by query so
    that they see the same machine load."""
    for q in warm_up:
        for call in calls.values():
            call(q)
    out: dict[str, list[float]] = {name: [] for name in calls}
    for q in queries:
        for name, call in calls.items():
            started = time.perf_counter()
            call(q)
            out[name].append((time.perf_counter() - started) * 1000)
    return out


def main(quick: bool = False) -> None:
    print("== retrieval ==")
    started = time.perf_counter()
    model = MiniLMEmbedder()
    print(f"model load {1000 * (time.perf_counter() - started):.0f} ms ({model.backend})")
    cache = EmbeddingCache(model, CACHE)
    cache.load()
    quality(cache, quick)
    latency(model, cache, quick)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tenth of the queries, no 100k")
    main(quick=parser.parse_args().quick)
