"""``POST /execute`` without an LLM: retrieve a tool, fill its arguments, generate, run.

Candidates come from a :class:`Retriever` (the platform's search index when it has one, else
:class:`OverlapRetriever`, token overlap over the store's tools). Whichever ranked them, the
*fit* of a tool is the share of the prompt's content words its definition covers
(:func:`fit_score`); below ``min_fit`` nothing fits and nothing runs. Arguments come from
:func:`~toolrun.nl.extract.extract_arguments`; a follow-up ("same for Paris") from the
session (:mod:`toolrun.nl.sessions`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from toolrun.errors import ToolNotFound
from toolrun.nl.codegen import generate_code
from toolrun.nl.extract import STOPWORDS, Extraction, _stem, extract_arguments, words
from toolrun.nl.sessions import (
    SessionStore,
    Turn,
    describe,
    follow_up,
    is_follow_up,
    last_call,
    session_boost,
)
from toolrun.registry.query import parse_filter
from toolrun.registry.tool import DOCUMENT_FIELDS, Tool
from toolrun.response import Response
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


@dataclass
class Plan:
    """What the router decided for one prompt (before running it)."""

    session_id: str
    prompt: str
    tool: Tool | None = None
    extraction: Extraction = field(default_factory=Extraction)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    follow_up: bool = False
    history: list[Turn] = field(default_factory=list)


class Router:
    """Plans and runs ``/execute`` requests on a platform."""

    def __init__(
        self,
        store: ToolStore,
        sessions: SessionStore,
        retriever: Retriever | None = None,
        *,
        min_fit: float = DEFAULT_MIN_FIT,
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.retriever: Retriever = retriever or OverlapRetriever(store)
        if retriever is not None and not isinstance(retriever, OverlapRetriever | IndexRetriever):
            self.retriever = IndexRetriever(retriever, store)
        self.min_fit = min_fit

    def plan(
        self,
        prompt: str,
        *,
        session_id: str | None = None,
        filter: Mapping[str, Any] | None = None,
        k: int = 5,
    ) -> Plan:
        if filter:  # a malformed filter is a 400 whichever retriever runs
            parse_filter(dict(filter), roots=DOCUMENT_FIELDS)
        plan = Plan(session_id=session_id or uuid.uuid4().hex, prompt=prompt)
        plan.history = self.sessions.history(plan.session_id) if session_id else []
        previous = last_call(plan.history)
        if previous is not None and previous.tool_id and is_follow_up(prompt):
            try:
                tool = self.store.get(previous.tool_id)
            except ToolNotFound:
                tool = None
            resolved = follow_up(prompt, previous, tool) if tool is not None else None
            if tool is not None and resolved is not None:
                plan.tool, plan.extraction, plan.follow_up = tool, resolved, True
                return plan
        plan.candidates = self.rank(prompt, plan.history, filter, k)
        if plan.candidates and plan.candidates[0]["fit"] >= self.min_fit:
            plan.tool = self.store.get(plan.candidates[0]["function"])
            plan.extraction = extract_arguments(prompt, plan.tool.input_schema)
        return plan

    def rank(
        self,
        prompt: str,
        history: Sequence[Turn],
        filter: Mapping[str, Any] | None,
        k: int,
    ) -> list[dict[str, Any]]:
        hits = self.retriever.search(prompt, max(k, 5), filter)
        ranked: list[dict[str, Any]] = []
        for tool_id, score, parts in hits:
            try:
                tool = self.store.get(tool_id)
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
        ranked.sort(
            key=lambda c: (-float(c["score"]), -float(c["retrieval"] or 0), str(c["function"]))
        )
        return ranked[:k]

    async def execute(
        self,
        executor: Any,
        prompt: str,
        *,
        session_id: str | None = None,
        filter: Mapping[str, Any] | None = None,
        k: int = 5,
        candidates: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Plan, run (unless ``dry_run``, missing arguments or no fit), record, answer."""
        plan = await asyncio.to_thread(self.plan, prompt, session_id=session_id, filter=filter, k=k)
        answer = self.answer(plan, dry_run=dry_run)
        if answer["status"] == "ready":
            assert plan.tool is not None
            job = await executor.invoke(plan.tool.id, plan.extraction.arguments)
            result = job.result or Response.error(job.error or f"job ended {job.status.value}")
            answer["execution_result"] = result.to_dict()
            answer["job_id"] = job.id
            answer["status"] = "failed" if result.is_error else "executed"
        if candidates:
            answer["candidates"] = plan.candidates
        turn = Turn(
            session_id=plan.session_id,
            prompt=prompt,
            status=answer["status"],
            tool_id=plan.tool.id if plan.tool else None,
            arguments=plan.extraction.arguments if plan.tool else None,
            result=answer["execution_result"],
        )
        await asyncio.to_thread(self.sessions.add, turn)
        return answer

    def answer(self, plan: Plan, *, dry_run: bool) -> dict[str, Any]:
        base: dict[str, Any] = {
            "session_id": plan.session_id,
            "function": None,
            "code": None,
            "arguments": None,
            "missing": [],
            "execution_result": None,
            "context": describe(plan.history),
            "follow_up": plan.follow_up,
        }
        if plan.tool is None:
            best = plan.candidates[0]["fit"] if plan.candidates else 0.0
            base["status"] = "no_fit"
            base["message"] = (
                f"no tool fits this prompt (best fit {best:.2f} < {self.min_fit:.2f}); "
                "nothing was run"
            )
            return base
        extraction = plan.extraction
        base.update(
            function=plan.tool.id,
            arguments=extraction.arguments,
            missing=extraction.missing,
            confidence=extraction.confidence,
            evidence=extraction.evidence,
            code=generate_code(plan.tool, extraction.arguments),
        )
        if extraction.missing:
            base["status"] = "missing_arguments"
            base["message"] = "required arguments not found in the prompt: " + ", ".join(
                extraction.missing
            )
        else:
            base["status"] = "planned" if dry_run else "ready"
        return base
