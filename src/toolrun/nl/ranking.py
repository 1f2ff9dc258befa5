"""Which of the retrieved tools fits a prompt, without an LLM.

Candidates come from a :class:`Retriever` (the platform's search index when it has one, else
:class:`OverlapRetriever`, token overlap over the store's tools). Whichever ranked them, the
*fit* of a tool is the share of the prompt's content words its definition covers
(:func:`fit_score`); :func:`rank_candidates` orders them by fit, session use and whether the
prompt supplies every required argument.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from toolrun.errors import ToolNotFound
from toolrun.nl.extract import STOPWORDS, _stem, extract_arguments, words
from toolrun.nl.sessions import Turn, session_boost
from toolrun.registry.query import parse_filter
from toolrun.registry.tool import DOCUMENT_FIELDS, Tool
from toolrun.storage.tool_store import ToolStore

log = logging.getLogger(__name__)

# Calibrated on BFCL v4 (simple_python vs irrelevance, one function offered per case): see
# tests/test_execute.py::test_the_fit_threshold_separates_bfcl_cases (95% of relevant cases
# kept, 65% of irrelevant ones refused).
DEFAULT_MIN_FIT = 0.25
Hit = tuple[str, float, dict[str, Any]]


class Retriever(Protocol):
    """Anything that ranks tools for a query (the retrieval package's ``ToolIndex``)."""

    def search(
        self, query: str, k: int, filter: Mapping[str, Any] | None = None
    ) -> Sequence[Hit]: ...


def content_words(text: str) -> set[str]:
    return {_stem(w) for w in words(text) if w not in STOPWORDS and len(w) > 1}


def tool_words(tool: Tool) -> set[str]:
    """The words a tool's definition offers a prompt: name, namespace, tags, description,
    parameter names, descriptions and enum values."""
    parts = [tool.name, tool.namespace or "", tool.description, *tool.tags]
    for name, spec in (tool.input_schema.get("properties") or {}).items():
        parts.append(name)
        if isinstance(spec, Mapping):
            parts.append(str(spec.get("description") or ""))
            parts.extend(str(v) for v in spec.get("enum") or ())
    return content_words(" ".join(parts))


def fit_score(prompt: str, tool: Tool) -> float:
    """Share of the prompt's content words the tool's definition covers (name words count
    double), in ``[0, 1]``."""
    query = content_words(prompt)
    if not query:
        return 0.0
    offered = tool_words(tool)
    named = content_words(f"{tool.name} {tool.namespace or ''} {' '.join(tool.tags)}")
    hits = sum(2.0 if w in named else 1.0 for w in query if w in offered)
    return min(1.0, hits / len(query))


class OverlapRetriever:
    """The fallback retriever: :func:`fit_score` over every tool matching the filter."""

    def __init__(self, store: ToolStore) -> None:
        self.store = store

    def search(self, query: str, k: int, filter: Mapping[str, Any] | None = None) -> list[Hit]:
        where = parse_filter(dict(filter), roots=DOCUMENT_FIELDS) if filter else None
        tools = self.store.query(where, limit=5000)
        scored = [(t.id, fit_score(query, t), {"overlap": fit_score(query, t)}) for t in tools]
        scored.sort(key=lambda hit: (-hit[1], hit[0]))
        return scored[:k]


class IndexRetriever:
    """The platform's search service (``toolrun.retrieval``) as a :class:`Retriever`: its hits
    (objects with ``tool_id`` and ``score``) as tuples, the filter parsed first; when it
    fails, :class:`OverlapRetriever` answers alone."""

    def __init__(self, service: Any, store: ToolStore) -> None:
        self.service = service
        self.fallback = OverlapRetriever(store)

    def search(self, query: str, k: int, filter: Mapping[str, Any] | None = None) -> list[Hit]:
        where = parse_filter(dict(filter), roots=DOCUMENT_FIELDS) if filter else None
        found: dict[str, Hit] = {}
        try:
            for hit in self.service.search(query, k, where):
                parts = {
                    name: float(getattr(hit, name))
                    for name in ("bm25", "dense")
                    if isinstance(getattr(hit, name, None), int | float)
                }
                found[hit.tool_id] = (hit.tool_id, float(hit.score), parts)
        except Exception:
            log.warning("tool search failed; ranking by word overlap only", exc_info=True)
        for hit in self.fallback.search(query, k, filter):
            found.setdefault(hit[0], hit)
        return list(found.values())


def rank_candidates(
    store: ToolStore,
    retriever: Retriever,
    prompt: str,
    history: Sequence[Turn],
    filter: Mapping[str, Any] | None,
    k: int,
) -> list[dict[str, Any]]:
    """The top ``k`` tools for ``prompt`` as answer rows (``function``, ``score``, ``fit``,
    ``retrieval``, ``session_boost``, ``parts``), best first."""
    hits = retriever.search(prompt, max(k, 5), filter)
    ranked: list[dict[str, Any]] = []
    for tool_id, score, parts in hits:
        try:
            tool = store.get(tool_id)
        except ToolNotFound:
            continue
        fit = fit_score(prompt, tool)
        boost = session_boost(history, tool.id)
        complete = not extract_arguments(prompt, tool.input_schema).missing
        total = fit + boost + (0.05 if complete else 0.0)
        ranked.append(
            {
                "function": tool.id,
                "score": round(total, 4),
                "fit": round(fit, 4),
                "retrieval": round(float(score), 4) if math.isfinite(score) else None,
                "session_boost": round(boost, 4),
                "parts": dict(parts),
            }
        )
    ranked.sort(key=lambda c: (-float(c["score"]), -float(c["retrieval"] or 0), str(c["function"])))
    return ranked[:k]
