"""``POST /execute``: retrieve a tool, fill its arguments, generate the code, run it.

Candidates are ranked by :mod:`toolrun.nl.ranking`; below ``min_fit`` nothing fits and
nothing runs. Arguments come from
:func:`~toolrun.nl.extract.extract_arguments`; a follow-up ("same for Paris") from the
session (:mod:`toolrun.nl.sessions`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from toolrun.errors import ToolNotFound
from toolrun.nl.codegen import generate_code
from toolrun.nl.extract import Extraction, extract_arguments
from toolrun.nl.ranking import (
    DEFAULT_MIN_FIT,
    IndexRetriever,
    OverlapRetriever,
    Retriever,
    rank_candidates,
)
from toolrun.nl.sessions import SessionStore, Turn, describe, follow_up, is_follow_up, last_call
from toolrun.registry.query import parse_filter
from toolrun.registry.tool import DOCUMENT_FIELDS, Tool
from toolrun.response import Response
from toolrun.storage.tool_store import ToolStore

__all__ = ["DEFAULT_MIN_FIT", "IndexRetriever", "OverlapRetriever", "Plan", "Retriever", "Router"]


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
        return rank_candidates(self.store, self.retriever, prompt, history, filter, k)

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
