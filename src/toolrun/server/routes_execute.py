"""Natural-language execution (seed 000): ``POST /execute``, ``GET|DELETE /sessions/{id}``.

See :mod:`toolrun.nl.router`. The answer is seed 000's ``{function, code, execution_result,
context}`` plus ``session_id``, ``status`` (``executed``, ``failed``, ``planned``,
``missing_arguments``, ``no_fit``), ``arguments``, ``missing``, ``planner`` (``llm``, with
``llm``: how the model was asked; or ``extractor``, with ``llm_error`` when an LLM is
configured but could not plan) and, when asked,
``candidates``. Not finding a tool or an argument is an answer, not an error; neither is an
LLM that cannot be reached.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from toolrun.config import Settings
from toolrun.errors import NotFound
from toolrun.execution.scripts import ScriptRunner
from toolrun.llm.client import LLMClient
from toolrun.nl.llm_router import LLMPlanner
from toolrun.nl.router import Router
from toolrun.nl.sessions import SessionStore
from toolrun.platform import Platform
from toolrun.server.deps import get_platform

router = APIRouter(tags=["natural language"])
SESSION_ID = r"^[A-Za-z0-9_.:-]{1,128}$"


class ExecuteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=4000, description="What to do, in words.")
    session_id: str | None = Field(None, pattern=SESSION_ID)
    filter: dict[str, Any] | None = Field(None, description="Mongo-style filter on the tools.")
    k: int = Field(5, ge=1, le=50, description="How many candidates to consider.")
    candidates: bool = Field(False, description="Include the ranked candidates with scores.")
    dry_run: bool = Field(False, description="Plan (tool, arguments, code) without running.")


def llm_planner(settings: Settings) -> LLMPlanner | None:
    """The LLM planner the settings ask for (``llm_base_url`` and ``llm_model``), if any."""
    if not (settings.llm_base_url and settings.llm_model):
        return None
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    client = LLMClient(
        settings.llm_base_url,
        settings.llm_model,
        api_key=key,
        timeout_s=settings.llm_timeout_s,
        max_retries=settings.llm_max_retries,
    )
    return LLMPlanner(client)


def nl_router(platform: Platform, request: Request) -> Router:
    """One router per app (the app's lifespan closes it); it uses the platform's search index
    when there is one, and an LLM when the settings name one."""
    existing: Router | None = getattr(request.app.state, "nl_router", None)
    if existing is None:
        index = getattr(platform, "retrieval", None)
        retriever = index if index is not None and hasattr(index, "search") else None
        existing = Router(
            platform.tools,
            SessionStore(platform.engine),
            retriever,
            planner=llm_planner(platform.settings),
            scripts=ScriptRunner(platform.settings, platform.executor.invoke),
        )
        request.app.state.nl_router = existing
    return existing


@router.post("/execute", summary="Find the tool a prompt asks for, fill its arguments, run it")
async def execute(
    body: ExecuteRequest, request: Request, platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    return await nl_router(platform, request).execute(
        platform.executor,
        body.prompt,
        session_id=body.session_id,
        filter=body.filter,
        k=body.k,
        candidates=body.candidates,
        dry_run=body.dry_run,
    )


@router.get("/sessions/{session_id}", summary="A session's history")
async def get_session(
    request: Request,
    session_id: str = Path(pattern=SESSION_ID),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    turns = await run_in_threadpool(nl_router(platform, request).sessions.history, session_id)
    if not turns:
        raise NotFound(f"no session {session_id!r}")
    return {"session_id": session_id, "turns": [t.to_dict() for t in turns]}


@router.delete("/sessions/{session_id}", summary="Forget a session")
async def delete_session(
    request: Request,
    session_id: str = Path(pattern=SESSION_ID),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    removed = await run_in_threadpool(nl_router(platform, request).sessions.delete, session_id)
    if not removed:
        raise NotFound(f"no session {session_id!r}")
    return {"session_id": session_id, "deleted": removed}
