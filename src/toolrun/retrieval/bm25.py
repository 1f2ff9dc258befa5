"""A small BM25 (Okapi, k1 and b) over sparse postings, with incremental add and remove.

Documents live in integer slots (shared with the dense matrix in :mod:`.index`). Each term's
postings are two compact ``array`` columns (slots, term frequencies: 8 bytes a posting, where
a dict of ints cost about 100), copied to numpy on first use after a change, so a query costs
a few vector operations per query term.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from toolrun.retrieval.text import tokenize


class BM25:
    def __init__(
        self,
        *,
        k1: float = 1.2,
        b: float = 0.75,
        tokenizer: Callable[[str], list[str]] = tokenize,
    ) -> None:
        self.k1 = k1
        self.b = b
        self.tokenize = tokenizer
        self.vocabulary: dict[str, int] = {}
        self.postings: list[tuple[array[int], array[float]]] = []  # by term id
        self.documents: dict[int, array[int]] = {}  # slot -> its term ids
        self.lengths = np.zeros(0, dtype=np.float32)
        self.total_length = 0
        self._frozen: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.documents)

    def add(self, slot: int, text: str) -> None:
        if slot in self.documents:
            self.remove(slot)
        counts = Counter(self.tokenize(text))
        if slot >= len(self.lengths):
            grown = np.zeros(max(slot + 1, 2 * len(self.lengths), 64), dtype=np.float32)
            grown[: len(self.lengths)] = self.lengths
            self.lengths = grown
        length = sum(counts.values())
        self.lengths[slot] = length
        self.total_length += length
        vocabulary, postings = self.vocabulary, self.postings
        ids = []
        for term, tf in counts.items():
            term_id = vocabulary.get(term)
            if term_id is None:
                term_id = vocabulary[term] = len(postings)
                postings.append((array("i"), array("f")))
            slots, tfs = postings[term_id]
            slots.append(slot)
            tfs.append(tf)
            ids.append(term_id)
        if self._frozen:
            for term_id in ids:
                self._frozen.pop(term_id, None)
        self.documents[slot] = array("i", ids)

    def remove(self, slot: int) -> None:
        ids = self.documents.pop(slot, None)
        if ids is None:
            return
        self.total_length -= int(self.lengths[slot])
        self.lengths[slot] = 0
        for term_id in ids:
            slots, tfs = self.postings[term_id]
            at = int(np.flatnonzero(np.frombuffer(slots, dtype=np.int32) == slot)[0])
            del slots[at]
            del tfs[at]
            self._frozen.pop(term_id, None)

    def _arrays(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        term_id = self.vocabulary.get(term)
        if term_id is None:
            return None
        frozen = self._frozen.get(term_id)
        if frozen is None:
            slots, tfs = self.postings[term_id]
            if not slots:
                return None
            frozen = (np.array(slots, dtype=np.int64), np.array(tfs, dtype=np.float32))
            self._frozen[term_id] = frozen
        return frozen

    def scores(self, query: str, size: int) -> np.ndarray:
        """BM25 of every slot below ``size`` (0 where no query term occurs)."""
        out = np.zeros(size, dtype=np.float32)
        n = len(self.documents)
        if not n:
            return out
        avg = self.total_length / n or 1.0
        for term, qtf in Counter(self.tokenize(query)).items():
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
        terms = sum(1 for slots, _ in self.postings if slots)
        return {"documents": len(self.documents), "terms": terms}
