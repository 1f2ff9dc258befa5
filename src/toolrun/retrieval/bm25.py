"""A small BM25 (Okapi, k1 and b) over sparse postings, with incremental add and remove.

Documents live in integer slots (shared with the dense matrix in :mod:`.index`). Postings are
dicts for cheap updates; each term's postings are frozen to numpy arrays on first use after a
change, so a query costs a few vector operations per query term.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from toolrun.retrieval.text import tokenize


class BM25:
    def __init__(self, *, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self.postings: dict[str, dict[int, int]] = {}
        self.terms: dict[int, Counter[str]] = {}
        self.lengths = np.zeros(0, dtype=np.float32)
        self.total_length = 0
        self._frozen: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.terms)

    def add(self, slot: int, text: str) -> None:
        if slot in self.terms:
            self.remove(slot)
        counts = Counter(tokenize(text))
        self.terms[slot] = counts
        if slot >= len(self.lengths):
            grown = np.zeros(max(slot + 1, 2 * len(self.lengths), 64), dtype=np.float32)
            grown[: len(self.lengths)] = self.lengths
            self.lengths = grown
        length = sum(counts.values())
        self.lengths[slot] = length
        self.total_length += length
        for term, tf in counts.items():
            self.postings.setdefault(term, {})[slot] = tf
            self._frozen.pop(term, None)

    def remove(self, slot: int) -> None:
        counts = self.terms.pop(slot, None)
        if counts is None:
            return
        self.total_length -= int(self.lengths[slot])
        self.lengths[slot] = 0
        for term in counts:
            docs = self.postings[term]
            del docs[slot]
            if not docs:
                del self.postings[term]
            self._frozen.pop(term, None)

    def _arrays(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        frozen = self._frozen.get(term)
        if frozen is None:
            docs = self.postings.get(term)
            if not docs:
                return None
            frozen = (
                np.fromiter(docs.keys(), dtype=np.int64, count=len(docs)),
                np.fromiter(docs.values(), dtype=np.float32, count=len(docs)),
            )
            self._frozen[term] = frozen
        return frozen

    def scores(self, query: str, size: int) -> np.ndarray:
        """BM25 of every slot below ``size`` (0 where no query term occurs)."""
        out = np.zeros(size, dtype=np.float32)
        n = len(self.terms)
        if not n:
            return out
        avg = self.total_length / n or 1.0
        for term, qtf in Counter(tokenize(query)).items():
            found = self._arrays(term)
            if found is None:
                continue
            slots, tf = found
            df = len(slots)
            idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            norm = self.k1 * (1.0 - self.b + self.b * self.lengths[slots] / avg)
            out[slots] += np.float32(idf * qtf) * tf * (self.k1 + 1.0) / (tf + norm)
        return out

    def stats(self) -> dict[str, Any]:
        return {"documents": len(self.terms), "terms": len(self.postings)}
