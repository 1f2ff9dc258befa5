"""The ``/v1`` routes: OpenAI's chat completions and models, and the gateway's request log.

- ``POST /v1/chat/completions``: a ``chat.completion``, or with ``"stream": true`` its
  server-sent events; rate-limited per API key.
- ``GET /v1/models``, ``GET /v1/models/{id}``: the public model names.
- ``GET /v1/logs?limit=&before=``, ``GET /v1/logs/{request_id}``: the request log, newest
  first (a key reads its own requests; with no keys configured, all of them).

Every error, bad input included, answers OpenAI's ``{"error": {"message", "type", "param",
"code"}}`` with its status (400, 401, 404, 429, 502), never toolrun's own error body and never
a 500 for what a client sent. Authentication applies when keys are configured.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from toolrun.errors import ToolrunError
from toolrun.gateway.auth import ANONYMOUS
from toolrun.gateway.errors import APIError, InvalidRequest, ModelNotFound
from toolrun.gateway.log import LogEntry, RequestLog
from toolrun.gateway.schema import parse_request
from toolrun.gateway.service import Gateway, Meta
from toolrun.platform import Platform

log = logging.getLogger(__name__)
MAX_PAGE = 100
T = TypeVar("T")


def build_router(platform: Platform, *, api_keys: Iterable[str] = ()) -> APIRouter:
    """The routes, bound to a new :class:`Gateway` of ``platform``."""
    return gateway_router(Gateway(platform.settings, platform, api_keys=api_keys))


def gateway_router(gateway: Gateway) -> APIRouter:
    """The routes of ``gateway`` (closed with the app's lifespan)."""

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await gateway.aclose()

    # Not in /openapi.json: OpenAI's own reference describes these routes, and toolrun's
    # schema (fuzzed by tests/test_fuzz.py) promises toolrun's error body on every route.
    router = APIRouter(prefix="/v1", lifespan=lifespan, include_in_schema=False)

    @router.post("/chat/completions", summary="OpenAI chat completions, with tool calling")
    async def chat_completions(request: Request) -> Response:
        started = time.perf_counter()
        meta = Meta()
        entry = LogEntry(meta.id, ANONYMOUS, "chat.completions", 200, 0.0)
        raw: Any = None
        try:
            entry.key_id = gateway.keys.check(request.headers.get("authorization"))
            gateway.limiter.take(entry.key_id)
            raw = _decode(await request.body())
            entry.request = raw
            parsed = parse_request(raw)
            entry.model, entry.stream = parsed.model, bool(parsed.stream)
            if parsed.stream:
                summary: dict[str, Any] = {}
                events = await gateway.stream(parsed, raw, meta, summary)
                logged = _logged_stream(gateway, events, entry, meta, summary, started)
                return StreamingResponse(
                    logged,
                    media_type="text/event-stream",
                    headers={"Cache-Control": "no-cache", "x-request-id": meta.id},
                )
            body = await gateway.complete(parsed, raw, meta)
            entry.response = body
            return _json(body, headers={"x-request-id": meta.id})
        except Exception as exc:  # every failure in OpenAI's shape
            error = _as_api_error(exc)
            entry.status, entry.error = error.status_code, error.message
            entry.response = error.to_openai()
            return _json(error.to_openai(), error.status_code, error.headers)
        finally:
            if not entry.stream or entry.status != 200:
                _record(gateway, entry, meta, started)

    @router.get("/models", summary="The models this gateway serves")
    async def list_models(request: Request) -> Response:
        try:
            gateway.keys.check(request.headers.get("authorization"))
        except APIError as exc:
            return _json(exc.to_openai(), exc.status_code, exc.headers)
        return _json({"object": "list", "data": gateway.models()})

    @router.get("/models/{model:path}", summary="One model")
    async def get_model(model: str, request: Request) -> Response:
        try:
            gateway.keys.check(request.headers.get("authorization"))
            found = next((m for m in gateway.models() if m["id"] == model), None)
            if found is None:
                raise ModelNotFound(f"The model `{model}` does not exist.", param="model")
        except APIError as exc:
            return _json(exc.to_openai(), exc.status_code, exc.headers)
        return _json(found)

    @router.get("/logs", summary="The request log, newest first")
    async def list_logs(request: Request, limit: str = "20", before: str | None = None) -> Response:
        try:
            store, owner = _log_owner(gateway, request)
            size, cursor = _int(limit, "limit", 1, MAX_PAGE), None
            if before is not None:
                cursor = _int(before, "before", 1, None)
            entries, more = await _read(store.list, key_id=owner, limit=size, before=cursor)
        except APIError as exc:
            return _json(exc.to_openai(), exc.status_code, exc.headers)
        last = entries[-1]["id"] if entries else None
        return _json({"object": "list", "data": entries, "has_more": more, "next_before": last})

    @router.get("/logs/{request_id}", summary="The log entry of one request")
    async def get_log(request_id: str, request: Request) -> Response:
        try:
            store, owner = _log_owner(gateway, request)
            found = await _read(store.get, request_id, key_id=owner)
            if found is None:
                raise APIError(f"No log entry for request {request_id!r}.", code="not_found")
        except APIError as exc:
            if exc.code == "not_found":
                exc.status_code = 404
            return _json(exc.to_openai(), exc.status_code, exc.headers)
        return _json(found)

    return router


def _log_owner(gateway: Gateway, request: Request) -> tuple[RequestLog, str | None]:
    """The log and whose entries the caller may read (``None``: everyone's)."""
    ident = gateway.keys.check(request.headers.get("authorization"))
    if gateway.log is None:
        raise InvalidRequest("The request log is off (TOOLRUN_GATEWAY_LOG=false).")
    return gateway.log, None if gateway.keys.open else ident


async def _read(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except ToolrunError as exc:
        raise _as_api_error(exc) from exc


def _int(text: str, name: str, low: int, high: int | None) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bound = f" and {high}" if high is not None else ""
        raise InvalidRequest(
            f"Invalid value for '{name}': expected an integer at least {low}{bound}.",
            param=name,
            code="invalid_value",
        )
    return value


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)",
            code="invalid_json",
        ) from None


def _as_api_error(exc: Exception) -> APIError:
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, ToolrunError):
        error = APIError(exc.message, code=exc.type)
        error.status_code = exc.status_code if exc.status_code < 500 else 503
        error.type = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return error
    log.exception("unexpected error in the gateway")
    error = APIError(f"The server had an error processing your request ({type(exc).__name__}).")
    error.status_code, error.type = 500, "server_error"
    return error


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = json.dumps(body, ensure_ascii=False).encode()
    return Response(content, status, headers=headers, media_type="application/json")


def _record(gateway: Gateway, entry: LogEntry, meta: Meta, started: float) -> None:
    if gateway.log is None:
        return
    entry.duration_ms = round((time.perf_counter() - started) * 1000, 3)
    entry.mode, entry.rounds = meta.mode, meta.usage.rounds
    try:
        gateway.log.add(entry)
    except Exception:  # the log never fails a request
        log.exception("could not queue a gateway log entry")


async def _logged_stream(
    gateway: Gateway,
    events: AsyncIterator[bytes],
    entry: LogEntry,
    meta: Meta,
    summary: dict[str, Any],
    started: float,
) -> AsyncIterator[bytes]:
    try:
        async for event in events:
            yield event
    finally:
        entry.response = {"stream": True, **summary, "usage": meta.usage.to_dict()}
        entry.error = json.dumps(summary["error"]) if "error" in summary else None
        _record(gateway, entry, meta, started)
