"""The seed-002 WebSocket: ``/tool`` and ``/function``.

Lifecycle, exactly as the seed documents it: the client sends one request
(``{"tool_id": ..., "input_data": {...}}``); the server answers ``{"success": true, "uuid"}``
once the job is queued, then ``{"success": true, "output": ...}`` or
``{"success": false, "error": "..."}``, then closes. A request that cannot be accepted gets the
error message straight away (no uuid). Completion messages also carry the ``uuid``.

Between the two, a tool that reports progress (:mod:`toolrun.progress`) adds
``{"success": true, "uuid", "progress": {"fraction", "message", "data", "at"}}`` messages: they
carry neither ``output`` nor ``error``, so the seed's clients (which read until one of those)
just print them. A request may carry an ``idempotency_key`` (the same key, the same job).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from toolrun.errors import ToolNotFound, ToolrunError
from toolrun.execution.jobs import JobStatus
from toolrun.platform import Platform
from toolrun.response import Response

router = APIRouter()
MAX_REQUEST_BYTES = 1 << 20


def _parse_request(raw: str, family: str) -> tuple[str, dict[str, Any], str | None]:
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
    key = data.get("idempotency_key")
    if key is not None and not isinstance(key, str):
        raise ValueError("idempotency_key must be a string")
    return ref, args, key


def completion_message(job: Mapping[str, Any]) -> dict[str, Any]:
    """The seed's last message, from a finished job's wire shape (``Job.to_dict()``)."""
    uuid, status, result = job["uuid"], job["status"], job["result"]
    if status == JobStatus.SUCCEEDED and result is not None:
        return {"success": True, "uuid": uuid, "output": job["output"]}
    message = job["error"] or (Response.from_dict(result).text if result else "") or status
    return {"success": False, "uuid": uuid, "status": status, "error": message}


async def serve_call(websocket: WebSocket, family: str) -> None:
    await websocket.accept()
    platform: Platform = websocket.app.state.platform
    try:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        raw = message.get("text") or (message.get("bytes") or b"").decode("utf-8", "replace")
        try:
            ref, args, key = _parse_request(raw, family)
            if key is None:
                job = await platform.executor.submit(ref, args)
            else:
                job = await platform.executor.submit_with_key(ref, args, key)
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
        async with contextlib.aclosing(platform.executor.events(job.id)) as events:
            # The snapshot comes once the stream listens: no progress is missed after the ack.
            snapshot = await anext(events)
            await websocket.send_json({"success": True, "uuid": job.id})
            if JobStatus(snapshot["status"]).final:
                await websocket.send_json(completion_message(snapshot["job"]))
                return
            async for event in events:
                if event["event"] == "progress":
                    progress = event["progress"]
                    await websocket.send_json(
                        {"success": True, "uuid": job.id, "progress": progress}
                    )
                elif event["event"] == "finished":
                    await websocket.send_json(completion_message(event["job"]))
                    return
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
