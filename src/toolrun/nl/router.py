"""``POST /execute``: retrieve a tool, fill its arguments, generate the code, run it.

Candidates are ranked by :mod:`toolrun.nl.ranking`. Then one of two planners:

- the extractor (no LLM): the best candidate below ``min_fit`` means nothing fits and nothing
  runs; arguments come from :func:`~toolrun.nl.extract.extract_arguments`, a follow-up
  ("same for Paris") from the session (:mod:`toolrun.nl.sessions`);
- with an LLM (:mod:`toolrun.nl.llm_router`), the model chooses among the top ``k`` (plus the
  tool the session last used) or none, and fills the arguments. When it cannot be asked
  (unreachable, refusing, answering nonsense) the extractor plans instead and the answer
  says why (``llm_error``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from toolrun.errors import ToolNotFound
from toolrun.execution.scripts import GENERIC, ScriptRunner
from toolrun.llm.errors import LLMError
from toolrun.nl.codegen import generate_code, import_target
from toolrun.nl.extract import Extraction
from toolrun.nl.llm_router import Decision, LLMPlanner
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

CODE_START_S = 15.0  # the code's own limit: its tool's, plus this for starting the code
__all__ = ["DEFAULT_MIN_FIT", "IndexRetriever", "OverlapRetriever", "Plan", "Retriever", "Router"]

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """What the router decided for one prompt (before running it)."""

    session_id: str
    prompt: str
    tool: Tool | None = None
    extraction: Extraction = field(default_factory=Extraction)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    ranked: dict[str, tuple[Tool, Extraction]] = field(default_factory=dict)  # by tool id
    follow_up: bool = False
    history: list[Turn] = field(default_factory=list)
    planner: str = "extractor"  # or "llm"
    llm: dict[str, Any] | None = None  # how the model was asked (mode, requests, repaired)
    llm_error: str | None = None  # why the LLM could not plan (the extractor did)
    reason: str | None = None  # the model's reason for choosing no tool
    error: str | None = None  # planning failed: nothing may run


class Router:
    """Plans and runs ``/execute`` requests on a platform."""

    def __init__(
        self,
        store: ToolStore,
        sessions: SessionStore,
        retriever: Retriever | None = None,
        *,
        min_fit: float = DEFAULT_MIN_FIT,
        planner: LLMPlanner | None = None,
        scripts: ScriptRunner | None = None,
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.retriever: Retriever = retriever or OverlapRetriever(store)
        if retriever is not None and not isinstance(retriever, OverlapRetriever | IndexRetriever):
            self.retriever = IndexRetriever(retriever, store)
        self.min_fit = min_fit
        self.planner = planner
        self.scripts = scripts

    async def aclose(self) -> None:
        if self.planner is not None:
            await self.planner.aclose()

    def plan(
        self,
        prompt: str,
        *,
        session_id: str | None = None,
        filter: Mapping[str, Any] | None = None,
        k: int = 5,
    ) -> Plan:
        """The extractor's plan (no LLM)."""
        plan = self._begin(prompt, session_id, filter)
        self._extract(plan, filter, k)
        return plan

    async def aplan(
        self,
        prompt: str,
        *,
        session_id: str | None = None,
        filter: Mapping[str, Any] | None = None,
        k: int = 5,
    ) -> Plan:
        """The LLM's plan when there is a planner, else (or when it fails) the extractor's."""
        if self.planner is None:
            return await asyncio.to_thread(
                self.plan, prompt, session_id=session_id, filter=filter, k=k
            )
        plan = await asyncio.to_thread(self._begin, prompt, session_id, filter)
        tools = await asyncio.to_thread(self._llm_candidates, plan, filter, k)
        try:
            decision = await self.planner.decide(prompt, plan.history, tools)
        except LLMError as exc:
            log.warning("LLM planning failed, the extractor plans instead: %s", exc.message)
            plan.llm_error = exc.message
            await asyncio.to_thread(self._extract, plan, filter, k)
            return plan
        self._adopt(plan, decision)
        return plan

    def _begin(self, prompt: str, session_id: str | None, filter: Mapping[str, Any] | None) -> Plan:
        if filter:  # a malformed filter is a 400 whichever retriever runs
            parse_filter(dict(filter), roots=DOCUMENT_FIELDS)
        plan = Plan(session_id=session_id or uuid.uuid4().hex, prompt=prompt)
        plan.history = self.sessions.history(plan.session_id) if session_id else []
        return plan

    def _extract(self, plan: Plan, filter: Mapping[str, Any] | None, k: int) -> None:
        """A follow-up of the session's last call, else the best candidate if it fits."""
        previous = last_call(plan.history)
        if previous is not None and previous.tool_id and is_follow_up(plan.prompt):
            tool = self._tool(previous.tool_id)
            resolved = follow_up(plan.prompt, previous, tool) if tool is not None else None
            if tool is not None and resolved is not None:
                plan.tool, plan.extraction, plan.follow_up = tool, resolved, True
                return
        if not plan.candidates:
            self.rank(plan, filter, k)
        if plan.candidates and plan.candidates[0]["fit"] >= self.min_fit:
            plan.tool, plan.extraction = plan.ranked[plan.candidates[0]["function"]]

    def _tool(self, tool_id: str) -> Tool | None:
        try:
            return self.store.get(tool_id)
        except ToolNotFound:
            return None

    def _llm_candidates(self, plan: Plan, filter: Mapping[str, Any] | None, k: int) -> list[Tool]:
        """The top ``k`` tools, and the one the session last called (without a filter, which
        it might not match) so that the model can resolve a follow-up."""
        self.rank(plan, filter, k)
        tools = [plan.ranked[c["function"]][0] for c in plan.candidates]
        previous = last_call(plan.history)
        if filter or previous is None or not previous.tool_id:
            return tools
        if all(t.id != previous.tool_id for t in tools):
            extra = self._tool(previous.tool_id)
            tools += [extra] if extra is not None else []
        return tools

    def _adopt(self, plan: Plan, decision: Decision) -> None:
        plan.planner = "llm"
        plan.llm = {
            "mode": decision.mode,
            "requests": decision.requests,
            "repaired": decision.repaired,
        }
        plan.tool, plan.error, plan.reason = decision.tool, decision.error, decision.reason
        if decision.tool is not None:
            by_llm = {"source": "llm", "text": "", "start": None, "end": None}
            plan.extraction = Extraction(
                arguments=decision.arguments,
                missing=decision.missing,
                evidence={name: dict(by_llm) for name in decision.arguments},
            )

    def rank(self, plan: Plan, filter: Mapping[str, Any] | None, k: int) -> None:
        """Rank the candidates for ``plan`` (its ``candidates`` and ``ranked``)."""
        plan.candidates = rank_candidates(
            self.store,
            self.retriever,
            plan.prompt,
            plan.history,
            filter,
            k,
            seen=plan.ranked,
        )

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
        plan = await self.aplan(prompt, session_id=session_id, filter=filter, k=k)
        answer = self.answer(plan, dry_run=dry_run)
        if answer["status"] == "ready":
            assert plan.tool is not None
            if self.scripts is not None:
                await self.run_code(self.scripts, plan.tool, answer)
            else:  # no script runner (a bare router): the call itself, through the executor
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
            tool_id=plan.tool.id if plan.tool and not plan.error else None,
            arguments=plan.extraction.arguments if plan.tool and not plan.error else None,
            result=answer["execution_result"],
        )
        await asyncio.to_thread(self.sessions.add, turn)
        return answer

    @staticmethod
    async def run_code(scripts: ScriptRunner, tool: Tool, answer: dict[str, Any]) -> None:
        """Run the generated code (the sandbox tier, else a worker process: it is the server's
        own template with literal arguments); its call of the tool is a job through the
        executor. ``execution_result`` is that call's result; ``output`` what the code
        printed."""
        target = import_target(tool)
        stubs: dict[str, dict[str, Tool | str]]
        if target is not None:
            stubs = {target[0]: {target[1]: tool}}
        else:
            stubs = {"toolrun.nl.client": {"call": GENERIC}}
        limit = (tool.timeout_s or scripts.settings.default_timeout_s) + CODE_START_S
        ran = await scripts.run(
            answer["code"], stubs, timeout_s=limit, allowed={tool.id}, allow_process=True
        )
        answer["output"] = ran.output
        answer["code_run"] = {"tier": ran.tier, "status": ran.status, "wall_ms": ran.wall_ms}
        call = ran.calls[-1] if ran.calls else None
        if call is not None and call.result is not None:
            answer["execution_result"] = call.result
            answer["job_id"] = call.job_id
            answer["status"] = "failed" if call.result.get("isError") else "executed"
        else:
            why = (call.error if call is not None else None) or ran.error or ran.status
            answer["execution_result"] = Response.error(f"the code did not run: {why}").to_dict()
            answer["status"] = "failed"

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
            "planner": plan.planner,
        }
        if plan.llm is not None:
            base["llm"] = plan.llm
        if plan.llm_error is not None:
            base["llm_error"] = plan.llm_error
        if plan.error is not None:
            base["status"], base["message"] = "failed", plan.error
            if plan.tool is not None:
                base.update(function=plan.tool.id, arguments=plan.extraction.arguments)
            return base
        if plan.tool is None:
            best = plan.candidates[0]["fit"] if plan.candidates else 0.0
            why = plan.reason or f"best fit {best:.2f} < {self.min_fit:.2f}"
            base["status"] = "no_fit"
            base["message"] = f"no tool fits this prompt ({why}); nothing was run"
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
