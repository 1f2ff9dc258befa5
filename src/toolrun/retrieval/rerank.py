"""An optional second stage: the hybrid's top ``depth`` tools re-scored by how well their words
cover the query's.

Two signals the first stage lacks, both over the candidates only (the idea of
``toolrun.nl.ranking.match_scores``, on the index's own tokens):

- *match*: the query's word stems each tool's text uses, each weighted by its IDF among the
  candidates (``log(1 + n / df)``; a word in every candidate decides nothing), a word in the
  tool's name counting double, as a share of the most a tool could score;
- *name*: the same sum over the words of the tool's name alone.

``bonus = match * match_score + name * name_score`` is added to the hybrid score of the
candidates (at most 1). The weights (0.15, 0.15) were picked on the even-numbered BFCL and
APIBench queries (``bench/retrieval.py`` prints the sweep). On the odd half it lifts BFCL
R@5 by 0.4 (93.4 to 93.8) and lowers APIBench's by 0.3 (43.4 to 43.1): it is off by default
(``ToolIndex(rerank=RERANK)`` or ``search(..., rerank=RERANK)`` turns it on).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from toolrun.retrieval.bm25 import BM25
from toolrun.retrieval.text import stem, words

# Chat around a request: it says nothing about which tool is meant.
_FILLER_WORDS = """
want wanted like need needs help hi hey hello thanks thank something someone interested know let
bored really also just maybe kind sort able might may must ok okay sure go going got tell mine one
some thing things stuff right now new good nice great all any same again
"""
FILLER = frozenset(_FILLER_WORDS.split())


@dataclass(frozen=True)
class Rerank:
    """Weights of the second stage and how many first-stage hits it re-scores."""

    match: float = 0.15
    name: float = 0.15
    depth: int = 40


RERANK = Rerank()  # the fitted weights (see the module docstring)
_FILLER_STEMS: frozenset[str] | None = None


def _filler() -> frozenset[str]:
    global _FILLER_STEMS
    if _FILLER_STEMS is None:
        _FILLER_STEMS = frozenset(stem(sorted(FILLER)))
    return _FILLER_STEMS


def terms(text: str) -> list[str]:
    """The distinct stems of ``text``'s words (one-letter words dropped)."""
    kept = [w for w in words(text) if len(w) > 1]
    return list(dict.fromkeys(stem(kept)))


def query_terms(query: str) -> list[str]:
    """:func:`terms` of the query without chat words (``need``, ``help``, ``please``)."""
    filler = _filler()
    return [t for t in terms(query) if t not in filler]


def name_terms(text: str) -> frozenset[str]:
    """The stems of an indexed text's first line: the tool's name (``document_text``)."""
    return frozenset(terms(text.split("\n", 1)[0]))


def word_match(
    bm25: BM25,
    names: Sequence[frozenset[str] | None],
    candidates: np.ndarray,
    query: str,
) -> tuple[np.ndarray, np.ndarray]:
    """``(match, name)`` of each candidate slot, in ``[0, 2]`` and ``[0, 1]``. Which query words
    a candidate uses is read from BM25's term ids of that document (a few dozen each), not from
    the postings (which grow with the index)."""
    n = len(candidates)
    query_words = query_terms(query)
    if not n or not query_words:
        return np.zeros(n, dtype=np.float32), np.zeros(n, dtype=np.float32)
    rows = {bm25.vocabulary[t]: i for i, t in enumerate(query_words) if t in bm25.vocabulary}
    used = np.zeros((len(query_words), n), dtype=np.float32)
    named = np.zeros((len(query_words), n), dtype=np.float32)
    for j, slot in enumerate(candidates.tolist()):
        term_ids = bm25.documents.get(slot)
        if term_ids is None:
            continue
        name = names[slot] or frozenset()
        for term_id in rows.keys() & set(term_ids):
            i = rows[term_id]
            used[i, j] = 1.0
            named[i, j] = query_words[i] in name
    df = used.sum(axis=1)
    idf = np.log1p(n / np.maximum(df, 1.0)) * (df > 0) / (len(query_words) * math.log1p(n))
    weights = idf.astype(np.float32)
    return weights @ (used + named), weights @ named
