"""Tool retrieval: quality on BFCL (pooled registry) and APIBench, latency, build cost.

``python -m bench.retrieval [--quick]``. Quality: recall@1/5/10 and nDCG@10 of BM25, dense
(all-MiniLM-L6-v2 in numpy) and hybrid, scored the way the benchmarks' READMEs say (BFCL by
function name, best variant; APIBench by ``hub|tool_key``), beside the READMEs' BM25 baselines.
Latency: hybrid query (query embedding included) at 1k, 10k and 100k tools made by
replicating the BFCL corpus with perturbed text and jittered vectors. Embeddings of the
corpora are cached under ``$TMPDIR/toolrun-bench-retrieval`` so reruns are fast.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from toolrun.retrieval.cache import EmbeddingCache
from toolrun.retrieval.embedder import MiniLMEmbedder
from toolrun.retrieval.index import MODES, Entry, ToolIndex
from toolrun.retrieval.text import document_text

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
CACHE = Path(tempfile.gettempdir()) / "toolrun-bench-retrieval" / "minilm"
BASELINES = {
    "bfcl": "README BM25, name + full JSON schema: R@1 64.3, R@5 87.6, R@10 91.4, nDCG@10 80.0",
    "apibench": "README BM25, name+domain+functionality+description: "
    "R@1 13.0, R@5 28.9, R@10 36.5, nDCG@10 23.9",
}
Dataset = tuple[list[Entry], dict[str, str], list[tuple[str, set[str]]]]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open() as handle:
        return [json.loads(line) for line in handle if line.strip()]


def bfcl() -> Dataset:
    root = SHARED / "bfcl" / "derived"
    entries, keys = [], {}
    for row in read_jsonl(root / "pooled_functions.jsonl"):
        fn = row["function"]
        text = document_text(fn["name"], fn.get("description", ""), fn.get("parameters"))
        entries.append(Entry(row["tool_id"], text))
        keys[row["tool_id"]] = row["name"]
    queries = [
        (q["query"], set(q["gold_names"]))
        for q in read_jsonl(root / "pooled_queries.jsonl")
        if q["gold_names"]
    ]
    return entries, keys, queries


def apibench_text(doc: dict[str, Any]) -> str:
    parts = [doc.get(f) for f in ("domain", "functionality", "description", "api_call")]
    body = "\n".join(str(p) for p in parts if p and p != "N/A")
    return document_text(str(doc.get("api_name", "")), body)


def apibench() -> Dataset:
    root = SHARED / "apibench"
    entries, keys = [], {}
    for row in read_jsonl(root / "corpus.jsonl"):
        entries.append(Entry(row["tool_id"], apibench_text(row["doc"])))
        keys[row["tool_id"]] = f"{row['hub']}|{row['tool_key']}"
    queries = [
        (q["query"], {f"{q['hub']}|{q['gold_tool_key']}"})
        for q in read_jsonl(root / "queries.jsonl")
    ]
    return entries, keys, queries


def score(ranked: Sequence[str], gold: set[str]) -> dict[str, float]:
    out = {f"R@{k}": float(any(r in gold for r in ranked[:k])) for k in (1, 5, 10)}
    dcg = sum(1 / math.log2(i + 2) for i, r in enumerate(ranked[:10]) if r in gold)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(gold), 10)))
    out["nDCG@10"] = dcg / ideal
    return out


def evaluate(
    index: ToolIndex,
    keys: dict[str, str],
    queries: list[tuple[str, set[str]]],
    mode: Any,
    alpha: float | None = None,
) -> dict[str, float]:
    totals: dict[str, float] = {}
    for text, gold in queries:
        ranked: list[str] = []
        for hit in index.search(text, 60, mode=mode, alpha=alpha):
            key = keys[hit.tool_id]
            if key not in ranked:
                ranked.append(key)
        for name, value in score(ranked, gold).items():
            totals[name] = totals.get(name, 0.0) + value
    return {name: 100 * value / len(queries) for name, value in totals.items()}


def quality(cache: EmbeddingCache, quick: bool) -> None:
    for name, load in (("bfcl", bfcl), ("apibench", apibench)):
        entries, keys, queries = load()
        if quick:
            queries = queries[::10]
        index = ToolIndex(cache=cache)
        started = time.perf_counter()
        before = cache.embedded
        index.upsert_many(entries)
        cache.embed([q for q, _ in queries])  # batch the query embeddings once
        cache.save()
        built = time.perf_counter() - started
        print(
            f"\n{name}: {len(entries)} documents, {len(set(keys.values()))} keys, "
            f"{len(queries)} queries; indexed in {built:.1f} s "
            f"({cache.embedded - before} texts embedded, the rest cached)"
        )
        print(f"  {BASELINES[name]}")
        print(f"  {'retriever':<16} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'nDCG@10':>8}")
        for mode in MODES[::-1]:
            row = evaluate(index, keys, queries, mode)
            print(
                f"  {mode:<16} "
                + " ".join(f"{row[c]:>6.1f}" for c in ("R@1", "R@5", "R@10"))
                + f" {row['nDCG@10']:>8.1f}"
            )
        if os.environ.get("BENCH_SWEEP"):
            for alpha in (0.3, 0.4, 0.6, 0.7, 0.8):
                row = evaluate(index, keys, queries, "hybrid", alpha)
                print(
                    f"  hybrid a={alpha:<6} "
                    + " ".join(f"{row[c]:>6.1f}" for c in ("R@1", "R@5", "R@10"))
                    + f" {row['nDCG@10']:>8.1f}"
                )


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


def latency(model: MiniLMEmbedder, cache: EmbeddingCache, quick: bool) -> None:
    entries, _, queries = bfcl()
    sizes = (1_000, 10_000) if quick else (1_000, 10_000, 100_000)
    print(f"\nlatency (hybrid, query embedding included; {os.cpu_count()} CPUs), build, memory")
    print(
        f"  {'tools':>8} {'p50 ms':>8} {'p99 ms':>8} {'bm25 p50':>9} {'build s':>8} {'index MB':>9}"
    )
    sample = [q for q, _ in queries[:: max(1, len(queries) // (100 if quick else 300))]]
    for size in sizes:
        table = synthetic(entries, cache, size)
        embedder = Precomputed(model, table)
        items = [Entry(f"t{i}", text) for i, text in enumerate(table)]
        tracemalloc.start()
        started = time.perf_counter()
        index = ToolIndex(embedder)
        index.upsert_many(items, batch=4096)
        built = time.perf_counter() - started
        memory = tracemalloc.get_traced_memory()[0] / 1e6
        tracemalloc.stop()
        hybrid = timed(lambda q, index=index: index.search(q, 10), sample)
        lexical = timed(lambda q, index=index: index.search(q, 10, mode="bm25"), sample)
        print(
            f"  {size:>8} {percentile(hybrid, 0.5):>8.2f} {percentile(hybrid, 0.99):>8.2f} "
            f"{percentile(lexical, 0.5):>9.2f} {built:>8.2f} {memory:>9.1f}"
        )
    texts = [e.text for e in entries[:128]]
    started = time.perf_counter()
    model.embed(texts)
    rate = len(texts) / (time.perf_counter() - started)
    print(
        f"  embedding throughput (BFCL documents, batch 32): {rate:.0f} documents/s; "
        "build figures above exclude embedding (vectors precomputed)"
    )


def timed(call: Callable[[str], object], queries: list[str]) -> list[float]:
    for q in queries[:5]:
        call(q)
    out = []
    for q in queries:
        started = time.perf_counter()
        call(q)
        out.append((time.perf_counter() - started) * 1000)
    return out


def main(quick: bool = False) -> None:
    print("== retrieval ==")
    started = time.perf_counter()
    model = MiniLMEmbedder()
    print(f"model load {1000 * (time.perf_counter() - started):.0f} ms")
    cache = EmbeddingCache(model, CACHE)
    cache.load()
    quality(cache, quick)
    latency(model, cache, quick)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tenth of the queries, no 100k")
    main(quick=parser.parse_args().quick)
