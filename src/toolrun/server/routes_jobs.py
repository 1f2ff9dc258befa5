"""Invocation and jobs: ``POST /tools/{id}/invoke`` waits and returns the Response;
``POST /jobs`` queues, ``GET /jobs/{uuid}`` reads, ``DELETE /jobs/{uuid}`` cancels,
``/jobs/{uuid}/events`` streams (WebSocket or SSE), ``/jobs/dead-letter`` lists what failed.

Both calls take an ``Idempotency-Key`` header (``POST /jobs`` also an ``idempotency_key``
field): the same key returns the same job. See ``docs/jobs.md``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, WebSocket
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.websockets import WebSocketDisconnect

from toolrun.errors import ToolrunError
from toolrun.execution.jobs import DeadLetterReason, JobStatus
from toolrun.platform import Platform
from toolrun.response import Response
from toolrun.server.deps import get_platform

router = APIRouter(tags=["jobs"])
IDEMPOTENCY_HEADER = "idempotency-key"
# Read straight from the headers (no dependency to solve on the hot path); documented here.
KEY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "The same key returns the same job instead of starting another (docs/jobs.md).",
}


class JobRequest(BaseModel):
    """A call to queue. Seed names (``tool_id``/``function_id``, ``input_data``) and toolrun's
    (``arguments``) are both accepted."""

    model_config = ConfigDict(extra="forbid")

    tool_id: str | None = Field(None, min_length=1, max_length=300)
    function_id: str | None = Field(None, min_length=1, max_length=300)
    input_data: dict[str, Any] | None = None
    arguments: dict[str, Any] | None = None
    idempotency_key: str | None = Field(
        None,
        description="The same key returns the same job (as the Idempotency-Key header does).",
    )

    @model_validator(mode="after")
    def _one_each(self) -> JobRequest:
        if (self.tool_id is None) == (self.function_id is None):
            raise ValueError("give exactly one of tool_id or function_id")
        if self.input_data is not None and self.arguments is not None:
            raise ValueError("give input_data or arguments, not both")
        return self

    @property
    def ref(self) -> str:
        return self.tool_id or self.function_id or ""

    @property
    def args(self) -> dict[str, Any]:
        return self.input_data if self.input_data is not None else (self.arguments or {})


def _idempotency_key(request: Request, in_body: str | None = None) -> str | None:
    header = request.headers.get(IDEMPOTENCY_HEADER)
    if header is not None and in_body is not None and header != in_body:
        raise HTTPException(
            422,
            "the Idempotency-Key header and the idempotency_key field differ; "
            "give one of them, or the same key in both",
        )
    return header if header is not None else in_body


def _invoke_route(family: str) -> None:
    @router.post(
        f"/{family}s/{{tool_id}}/invoke",
        summary=f"Call a {family} and wait for its result (MCP CallToolResult)",
        name=f"invoke_{family}",
        openapi_extra={"parameters": [KEY_PARAMETER]},
    )
    async def invoke(
        tool_id: str,
        request: Request,
        arguments: dict[str, Any] | None = Body(
            None, openapi_examples={"value": {"value": {"value": 5}}}
        ),
    ) -> JSONResponse:
        # The hot path: the platform straight from app state, no dependency to solve.
        platform: Platform = request.app.state.platform
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            job = await platform.executor.invoke(tool_id, arguments or {})
        else:  # the first call's job (waited for), however often the call is repeated
            job = await platform.executor.invoke_with_key(tool_id, arguments or {}, key)
        # Every finished job carries a Response; one that could not run says why in it.
        result = job.result or Response.error(job.error or f"job ended {job.status.value}")
        return JSONResponse(
            result.to_dict(),
            headers={"X-Toolrun-Job": job.id, "X-Toolrun-Job-Status": job.status.value},
        )


for _family in ("tool", "function"):
    _invoke_route(_family)


@router.post(
    "/jobs",
    status_code=202,
    summary="Queue a call; returns the job at once",
    openapi_extra={"parameters": [KEY_PARAMETER]},
)
async def submit(
    body: JobRequest, request: Request, platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    key = _idempotency_key(request, body.idempotency_key)
    if key is None:
        job = await platform.executor.submit(body.ref, body.args)
    else:
        job = await platform.executor.submit_with_key(body.ref, body.args, key)
    return job.to_dict()


@router.get("/jobs", summary="Recent jobs, newest first")
async def list_jobs(
    status: JobStatus | None = None,
    tool_id: str | None = Query(None, max_length=300),
    limit: int = Query(100, ge=1, le=1000),
    platform: Platform = Depends(get_platform),
) -> list[dict[str, Any]]:
    jobs = await platform.executor.list_jobs(status=status, tool_id=tool_id, limit=limit)
    return [job.to_dict() for job in jobs]


# -- the dead-letter list (before /jobs/{job_id}, which would take "dead-letter" for an id) ----


@router.get(
    "/jobs/dead-letter",
    summary="Jobs that ended failed or timed_out (with why), most recently dead first",
)
async def dead_letters(
    reason: DeadLetterReason | None = None,
    tool_id: str | None = Query(None, max_length=300),
    limit: int = Query(100, ge=1, le=1000),
    platform: Platform = Depends(get_platform),
) -> list[dict[str, Any]]:
    jobs = await platform.executor.dead_letters(reason=reason, tool_id=tool_id, limit=limit)
    return [job.to_dict() for job in jobs]


@router.delete(
    "/jobs/dead-letter",
    summary="Take every job (or those of a reason or tool) off the dead-letter list",
)
async def purge_dead_letters(
    reason: DeadLetterReason | None = None,
    tool_id: str | None = Query(None, max_length=300),
    platform: Platform = Depends(get_platform),
) -> dict[str, int]:
    removed = await platform.executor.forget_dead(reason=reason, tool_id=tool_id)
    return {"removed": removed}


@router.delete(
    "/jobs/dead-letter/{job_id}", summary="Take one job off the dead-letter list (it is kept)"
)
async def forget_dead_letter(
    job_id: str, platform: Platform = Depends(get_platform)
) -> dict[str, Any]:
    await platform.executor.forget_dead(job_id)
    job = await platform.executor.get(job_id)
    return job.to_dict()


@router.post(
    "/jobs/{job_id}/retry",
    status_code=202,
    summary="Run a dead-lettered job again, as a new job (retry_of names the old one)",
)
async def retry_job(job_id: str, platform: Platform = Depends(get_platform)) -> dict[str, Any]:
    job = await platform.executor.retry(job_id)
    return job.to_dict()


@router.get("/jobs/{job_id}", summary="A job's status and, once finished, its result")
async def get_job(
    job_id: str,
    wait_s: float | None = Query(
        None, ge=0, le=300, description="Wait up to this long for the end."
    ),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    if wait_s:
        job = await platform.executor.wait(job_id, wait_s)
    else:
        job = await platform.executor.get(job_id)
    return job.to_dict()


@router.delete("/jobs/{job_id}", summary="Cancel a queued or running job")
async def cancel_job(job_id: str, platform: Platform = Depends(get_platform)) -> dict[str, Any]:
    job = await platform.executor.cancel(job_id)
    return job.to_dict()


# -- event streams ---------------------------------------------------------------------------


@router.get(
    "/jobs/{job_id}/events",
    summary="A job's lifecycle and progress as Server-Sent Events (or connect a WebSocket)",
    response_class=StreamingResponse,
)
async def job_events_sse(job_id: str, platform: Platform = Depends(get_platform)) -> Any:
    stream = platform.executor.events(job_id)
    try:  # the first event here, so an unknown job is a 404 rather than a broken stream
        first = await anext(stream)
    except BaseException:
        await stream.aclose()
        raise

    async def body() -> AsyncIterator[str]:
        async with contextlib.aclosing(stream):
            yield _sse(first)
            async for event in stream:
                yield _sse(event)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


def _sse(event: dict[str, Any]) -> str:
    return f"event: {event['event']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"


@router.websocket("/jobs/{job_id}/events")
async def job_events_socket(websocket: WebSocket, job_id: str) -> None:
    """Sends each event as a JSON message and closes after ``finished``; an unknown job gets
    ``{"event": "error", "error": {...}}`` and a close."""
    await websocket.accept()
    platform: Platform = websocket.app.state.platform
    try:
        async with contextlib.aclosing(platform.executor.events(job_id)) as stream:
            async for event in stream:
                await websocket.send_json(event)
    except ToolrunError as exc:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await websocket.send_json({"event": "error", **exc.to_dict()})
    except WebSocketDisconnect:
        return
    finally:
        with contextlib.suppress(RuntimeError):  # already closed
            await websocket.close()
