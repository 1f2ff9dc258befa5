"""The seed-002 WebSocket: ``/tool`` and ``/function``.

Lifecycle, exactly as the seed documents it: the client sends one request
(``{"tool_id": ..., "input_data": {...}}``); the server answers ``{"success": true, "uuid"}``
once the job is queued, then ``{"success": true, "output": ...}`` or
``{"success": false, "error": "..."}``, then closes. A request that cannot be accepted gets the
error message straight away (no uuid). Completion messages also carry the ``uuid``.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from toolrun.errors import ToolNotFound, ToolrunError
from toolrun.execution.jobs import Job, JobStatus
from toolrun.platform import Platform

router = APIRouter()
MAX_REQUEST_BYTES = 1 << 20


def _parse_request(raw: str, family: str) -> tuple[str, dict[str, Any]]:
    if len(raw) > MAX_REQUEST_BYTES:
        raise ValueError(f"request larger than {MAX_REQUEST_BYTES} bytes")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"request is not JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(data, dict):
        raise ValueError(
            f'request must be a JSON object like {{"{family}_id": ..., "input_data": {{}}}}'
        )
    ref = data.get(f"{family}_id", data.get("tool_id", data.get("function_id")))
    if not isinstance(ref, str) or not ref:
        raise ValueError(f"missing {family}_id (a string)")
    args = data.get("input_data", data.get("arguments", {}))
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ValueError("input_data must be a JSON object")
    return ref, args


def completion_message(job: Job) -> dict[str, Any]:
    if job.status == JobStatus.SUCCEEDED and job.result is not None:
        return {"success": True, "uuid": job.id, "output": job.result.output}
    message = job.error or (job.result.text if job.result else "") or job.status.value
    return {"success": False, "uuid": job.id, "status": job.status.value, "error": message}


async def serve_call(websocket: WebSocket, family: str) -> None:
    await websocket.accept()
    platform: Platform = websocket.app.state.platform
    try:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        raw = message.get("text") or (message.get("bytes") or b"").decode("utf-8", "replace")
        try:
            ref, args = _parse_request(raw, family)
            job = await platform.executor.submit(ref, args)
        except ToolNotFound as exc:
            label = "Tool" if family == "tool" else "Function"
            await websocket.send_json(
                {"success": False, "error": f"{label} not registered", "detail": exc.message}
            )
            return
        except ToolrunError as exc:
            await websocket.send_json(
                {"success": False, "error": exc.message, "detail": exc.detail}
            )
            return
        except ValueError as exc:
            await websocket.send_json({"success": False, "error": str(exc)})
            return
        await websocket.send_json({"success": True, "uuid": job.id})
        finished = await platform.executor.wait(job.id)
        await websocket.send_json(completion_message(finished))
    except WebSocketDisconnect:
        return  # the client left; its job still runs and is recorded
    finally:
        with contextlib.suppress(RuntimeError):  # already closed
            await websocket.close()


@router.websocket("/tool")
async def tool_socket(websocket: WebSocket) -> None:
    await serve_call(websocket, "tool")


@router.websocket("/function")
async def function_socket(websocket: WebSocket) -> None:
    await serve_call(websocket, "function")
