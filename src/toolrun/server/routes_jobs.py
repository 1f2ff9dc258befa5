"""Invocation and jobs: ``POST /tools/{id}/invoke`` waits and returns the Response;
``POST /jobs`` queues, ``GET /jobs/{uuid}`` reads, ``DELETE /jobs/{uuid}`` cancels."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from toolrun.execution.jobs import JobStatus
from toolrun.platform import Platform
from toolrun.response import Response
from toolrun.server.deps import get_platform

router = APIRouter(tags=["jobs"])


class JobRequest(BaseModel):
    """A call to queue. Seed names (``tool_id``/``function_id``, ``input_data``) and toolrun's
    (``arguments``) are both accepted."""

    model_config = ConfigDict(extra="forbid")

    tool_id: str | None = Field(None, min_length=1, max_length=300)
    function_id: str | None = Field(None, min_length=1, max_length=300)
    input_data: dict[str, Any] | None = None
    arguments: dict[str, Any] | None = None

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


def _invoke_route(family: str) -> None:
    @router.post(
        f"/{family}s/{{tool_id}}/invoke",
        summary=f"Call a {family} and wait for its result (MCP CallToolResult)",
        name=f"invoke_{family}",
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
        job = await platform.executor.invoke(tool_id, arguments or {})
        # Every finished job carries a Response; one that could not run says why in it.
        result = job.result or Response.error(job.error or f"job ended {job.status.value}")
        return JSONResponse(
            result.to_dict(),
            headers={"X-Toolrun-Job": job.id, "X-Toolrun-Job-Status": job.status.value},
        )


for _family in ("tool", "function"):
    _invoke_route(_family)


@router.post("/jobs", status_code=202, summary="Queue a call; returns the job at once")
async def submit(request: JobRequest, platform: Platform = Depends(get_platform)) -> dict[str, Any]:
    job = await platform.executor.submit(request.ref, request.args)
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
