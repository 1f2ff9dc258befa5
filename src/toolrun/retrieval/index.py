"""``ToolIndex``: BM25 and dense vectors over the same slots, fused; Mongo-style filters.

Hybrid score: ``alpha * cos/max_cos + (1 - alpha) * bm25/max_bm25`` over the whole index (both
parts scaled so the best document scores 1), tuned on BFCL and APIBench (``bench/retrieval.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np

from toolrun.registry.query import Filter, matches
from toolrun.retrieval.bm25 import BM25
from toolrun.retrieval.cache import EmbeddingCache
from toolrun.retrieval.embedder import Embedder

Mode = Literal["hybrid", "bm25", "dense"]
MODES: tuple[Mode, ...] = ("hybrid", "bm25", "dense")
DEFAULT_ALPHA = 0.6


class Hit(NamedTuple):
    """One ranked tool: ``(tool_id, score, parts)``, parts being ``{"bm25", "dense"}``."""

    tool_id: str
    score: float
    parts: dict[str, float]


@dataclass(frozen=True)
class Entry:
    """One thing to index: its id, the text to index and the document filters see."""

    tool_id: str
    text: str
    document: Mapping[str, Any] | None = None


class ToolIndex:
    """Thread-safe; writes and searches take one lock (a search is a few milliseconds)."""

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        cache: EmbeddingCache | None = None,
        alpha: float = DEFAULT_ALPHA,
    ) -> None:
        if cache is None and embedder is not None:
            cache = EmbeddingCache(embedder)
        self.cache = cache
        self.alpha = alpha
        self.bm25 = BM25()
        dim = cache.embedder.dim if cache else 1
        self.matrix = np.zeros((64, dim), dtype=np.float32)
        self.slots: dict[str, int] = {}
        self.ids: list[str | None] = []
        self.documents: list[Mapping[str, Any] | None] = []
        self.keys: list[str | None] = []
        self._free: list[int] = []
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self.slots)

    def __contains__(self, tool_id: object) -> bool:
        return tool_id in self.slots

    @property
    def dense(self) -> bool:
        return self.cache is not None

    def used_keys(self) -> set[str]:
        return {k for k in self.keys if k is not None}

    def upsert(self, tool_id: str, text: str, document: Mapping[str, Any] | None = None) -> None:
        self.upsert_many([Entry(tool_id, text, document)])

    def upsert_many(self, entries: Sequence[Entry], *, batch: int = 256) -> None:
        """Add or replace entries; only texts not in the embedding cache are embedded."""
        for start in range(0, len(entries), batch):
            chunk = entries[start : start + batch]
            vectors = self.cache.embed([e.text for e in chunk]) if self.cache else None
            with self._lock:
                for row, entry in enumerate(chunk):
                    slot = self._slot(entry.tool_id)
                    self.bm25.add(slot, entry.text)
                    self.documents[slot] = entry.document
                    if vectors is not None and self.cache is not None:
                        self.matrix[slot] = vectors[row]
                        self.keys[slot] = self.cache.key(entry.text)

    def remove(self, tool_id: str) -> bool:
        with self._lock:
            slot = self.slots.pop(tool_id, None)
            if slot is None:
                return False
            self.bm25.remove(slot)
            self.matrix[slot] = 0.0
            self.ids[slot] = self.documents[slot] = self.keys[slot] = None
            self._free.append(slot)
            return True

    def retain(self, tool_ids: Iterable[str]) -> None:
        """Drop every entry not in ``tool_ids``."""
        keep = set(tool_ids)
        for tool_id in [t for t in self.slots if t not in keep]:
            self.remove(tool_id)

    def _slot(self, tool_id: str) -> int:
        slot = self.slots.get(tool_id)
        if slot is not None:
            return slot
        if self._free:
            slot = self._free.pop()
        else:
            slot = len(self.ids)
            self.ids.append(None)
            self.documents.append(None)
            self.keys.append(None)
            if slot >= len(self.matrix):
                grown = np.zeros((2 * len(self.matrix), self.matrix.shape[1]), dtype=np.float32)
                grown[: len(self.matrix)] = self.matrix
                self.matrix = grown
        self.slots[tool_id] = slot
        self.ids[slot] = tool_id
        return slot

    def search(
        self,
        query: str,
        k: int = 10,
        where: Filter | None = None,
        *,
        mode: Mode = "hybrid",
        alpha: float | None = None,
    ) -> list[Hit]:
        """The ``k`` best entries for ``query`` that match ``where`` (best first)."""
        if mode != "bm25" and self.cache is None:
            mode = "bm25"
        query_vector = self.cache.embed([query])[0] if mode != "bm25" and self.cache else None
        weight = self.alpha if alpha is None else alpha
        with self._lock:
            size = len(self.ids)
            if not self.slots or k <= 0:
                return []
            lexical = self.bm25.scores(query, size)
            if query_vector is not None:
                cosine = self.matrix[:size] @ query_vector
            else:
                cosine = np.zeros(size, dtype=np.float32)
            if mode == "bm25":
                combined = lexical.copy()
            elif mode == "dense":
                combined = cosine.copy()
            else:
                top_lexical = float(lexical.max()) or 1.0
                top_dense = float(cosine.max()) or 1.0
                combined = weight * cosine / top_dense + (1 - weight) * lexical / top_lexical
            if self._free:
                combined[self._free] = -np.inf
            picked = self._top(combined, k, where)
            return [
                Hit(
                    str(self.ids[s]),
                    float(combined[s]),
                    {"bm25": float(lexical[s]), "dense": float(cosine[s])},
                )
                for s in picked
            ]

    def _top(self, scores: np.ndarray, k: int, where: Filter | None) -> list[int]:
        live = len(self.slots)
        want = min(k, live) if where is None else min(max(4 * k, 256), live)
        while True:
            if want >= len(scores):
                order = np.argsort(-scores, kind="stable")
            else:
                part = np.argpartition(-scores, want)[:want]
                order = part[np.argsort(-scores[part], kind="stable")]
            picked: list[int] = []
            for slot in order.tolist():
                if self.ids[slot] is None:
                    continue
                if where is not None:
                    doc = self.documents[slot]
                    if doc is None or not matches(where, doc):
                        continue
                picked.append(slot)
                if len(picked) == k:
                    return picked
            if want >= len(scores) or want >= live:
                return picked
            want = min(4 * want, len(scores))

    def stats(self) -> dict[str, Any]:
        return {
            "tools": len(self.slots),
            "dense": self.dense,
            "matrix_bytes": int(self.matrix.nbytes),
            **self.bm25.stats(),
        }
