"""The in-process backend: the REST routes the SDK calls, answered from a :class:`Registry`.

``Client.local(registry)`` plugs :class:`LocalTransport` into httpx, so the SDK sends exactly
what it sends to a server and gets the same shapes, status codes and error bodies back. For
tests and notebooks; what differs from a server:

- a call runs at once, in this process, through :meth:`Registry.execute_function_call` (no
  worker processes, time limits or retries of the tool's policy); ``submit`` returns a job that
  has already finished, so cancelling it is a ``409``, and its event stream is ``snapshot``
  then ``finished``;
- tools are shown under their registered names (``math_add``, the names the model sees), and
  a call may name a tool so, or by its own id or name;
- ``search`` ranks with BM25 only (no embeddings);
- ``execute`` needs the server's natural-language router: it answers ``501 not_supported``
  (:class:`~toolrun.client.errors.NotSupported`).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import httpx

from toolrun.errors import (
    ArgumentsInvalid,
    IdempotencyKeyReused,
    InvalidDefinition,
    JobAlreadyFinished,
    NotFound,
    ToolAlreadyExists,
    ToolNotFound,
    ToolrunError,
)
from toolrun.execution.jobs import Job
from toolrun.registry.formats import seed_path_to_canonical, to_seed, tool_from_any
from toolrun.registry.query import map_paths, matches, parse_filter
from toolrun.registry.registry import Registry
from toolrun.registry.schema import validate_arguments
from toolrun.registry.tool import DOCUMENT_FIELDS, Tool

LOCAL_URL = "http://toolrun.local"
Answer = tuple[int, Any]
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"/functions"), "list_functions"),
    ("POST", re.compile(r"/functions"), "query_functions"),
    ("POST", re.compile(r"/function"), "create"),
    ("GET", re.compile(r"/function/([^/]+)"), "get"),
    ("PUT", re.compile(r"/function/([^/]+)"), "update"),
    ("DELETE", re.compile(r"/function/([^/]+)"), "delete"),
    ("POST", re.compile(r"/functions/([^/]+)/invoke"), "invoke"),
    ("POST", re.compile(r"/jobs"), "submit"),
    ("GET", re.compile(r"/jobs/([^/]+)/events"), "events"),
    ("GET", re.compile(r"/jobs/([^/]+)"), "get_job"),
    ("DELETE", re.compile(r"/jobs/([^/]+)"), "cancel_job"),
    ("POST", re.compile(r"/search"), "search"),
    ("POST", re.compile(r"/execute"), "execute"),
]


class NotSupportedHere(ToolrunError):
    status_code = 501
    type = "not_supported"


def _body(request: httpx.Request) -> Any:
    raw = request.content
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        raise InvalidDefinition("the request body is not JSON") from None


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ArgumentsInvalid(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _render(tool: Tool, request: httpx.Request) -> dict[str, Any]:
    if request.url.params.get("format") == "toolrun":
        return tool.model_dump(mode="json")
    return to_seed(tool, "function")


class LocalRouter:
    """Answers the SDK's requests from ``registry`` (see the module docstring)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.jobs: dict[str, Job] = {}
        self._keys: dict[str, tuple[str, str]] = {}  # idempotency key -> (job id, request)
        self._lock = threading.Lock()

    # -- dispatch --------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.raw_path.decode("ascii").partition("?")[0]
        try:
            for method, pattern, name in _ROUTES:
                found = pattern.fullmatch(path)
                if found and method == request.method:
                    args = [unquote(part) for part in found.groups()]
                    status, body = getattr(self, name)(request, *args)
                    break
            else:
                raise NotFound(f"no route {request.method} {path} in the in-process backend")
        except ToolrunError as exc:
            status, body = exc.status_code, exc.to_dict()
        except Exception as exc:  # as the server answers what it did not expect
            message = f"internal error: {type(exc).__name__}: {exc}"
            error = {"type": "internal_error", "message": message, "detail": None}
            status, body = 500, {"error": error}
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers={"content-type": "text/event-stream"})
        return httpx.Response(status, json=body)

    # -- tools ----------------------------------------------------------------------------

    def name_of(self, ref: str) -> str:
        """The registered name ``ref`` means: itself (with or without a version), a tool's
        own id, or a tool's own name."""
        for name in (ref, ref.partition(":")[0]):
            if name in self.registry:
                return name
        entries = [(name, self.registry.get(name)) for name in self.registry.names()]
        for candidates in (
            [n for n, t in entries if t.id == ref],
            [n for n, t in entries if t.name == ref.partition(":")[0]],
        ):
            if candidates:
                return candidates[0]
        raise ToolNotFound(f"no function {ref!r} in the registry")

    def shown(self, name: str) -> Tool:
        """The tool registered as ``name``, named so (``math_add``), as the model sees it."""
        return self.registry.get(name).model_copy(update={"name": name})

    def tool(self, ref: str) -> Tool:
        return self.shown(self.name_of(ref))

    def tools(self) -> list[Tool]:
        return [self.shown(name) for name in self.registry.names()]

    def _check_new(self, tool: Tool) -> None:
        name = self.registry.exported_name(tool)
        if name in self.registry:
            raise ToolAlreadyExists(f"function {name!r} already exists")

    def register_callable(self, func: Callable[..., Any]) -> Tool:
        """Register a Python function itself (it need not be importable by path); errors
        are the SDK's, as if a server had answered."""
        from toolrun.client.errors import from_body
        from toolrun.registry.decorators import get_tool, tool_from_callable

        try:
            self._check_new(get_tool(func) or tool_from_callable(func))
            return self.shown(self.registry.register(func)[0])
        except ToolrunError as exc:
            raise from_body(exc.status_code, exc.to_dict()) from None

    def list_functions(self, request: httpx.Request) -> Answer:
        query = request.url.params.get("q")
        if query is not None:
            k = int(request.url.params.get("k", 10))
            return 200, [_render(t, request) for t, _ in self.ranked(query, k)]
        return 200, self._page(self.tools(), request)

    def query_functions(self, request: httpx.Request) -> Answer:
        raw = _body(request) or {}
        mapped = map_paths(raw, lambda path: seed_path_to_canonical(path, "function"))
        where = parse_filter(mapped, roots=DOCUMENT_FIELDS)
        found = [t for t in self.tools() if matches(where, t.to_document())]
        return 200, self._page(found, request)

    def _page(self, tools: list[Tool], request: httpx.Request) -> list[dict[str, Any]]:
        offset = int(request.url.params.get("offset", 0))
        limit = request.url.params.get("limit")
        end = None if limit is None else offset + int(limit)
        return [_render(t, request) for t in tools[offset:end]]

    def create(self, request: httpx.Request) -> Answer:
        tool = tool_from_any(_object(_body(request), "a tool"))
        self._check_new(tool)
        return 201, to_seed(self.shown(self.registry.register(tool)[0]), "function")

    def get(self, request: httpx.Request, ref: str) -> Answer:
        return 200, _render(self.tool(ref), request)

    def update(self, request: httpx.Request, ref: str) -> Answer:
        from toolrun.server.shapes import update_changes  # pure: no web framework behind it

        name = self.name_of(ref)
        current = self.registry.get(name)
        changed = current.with_changes(**update_changes(_object(_body(request), "a PUT"), current))
        # Registry has no public "replace": keep the callable of the entry being replaced.
        func = self.registry._lookup(name).func
        with self._lock:
            self.registry.unregister(name)
            try:
                self.registry.register(changed, func=func)
            except ToolrunError:
                self.registry.register(current, func=func)
                raise
        return 200, to_seed(self.shown(name), "function")

    def delete(self, request: httpx.Request, ref: str) -> Answer:
        name = self.name_of(ref)
        gone = self.shown(name)
        self.registry.unregister(name)
        return 200, {"success": True, "function_id": gone.id}

    # -- calls and jobs -------------------------------------------------------------------

    def _run(self, ref: str, args: Any, key: str | None = None) -> Job:
        name = self.name_of(ref)
        tool = self.shown(name)
        arguments = {**tool.default_params, **_object(args, "arguments")}
        validate_arguments(tool.input_schema, arguments)
        job = Job(tool.id, arguments, idempotency_key=key).started()
        return job.answered(self.registry.execute_function_call(name, arguments))

    def invoke(self, request: httpx.Request, ref: str) -> Answer:
        job = self._keyed(request.headers.get("idempotency-key"), ref, _body(request))
        assert job.result is not None
        return 200, job.result.to_dict()

    def submit(self, request: httpx.Request) -> Answer:
        body = _object(_body(request), "a job request")
        ref = body.get("function_id") or body.get("tool_id")
        if not isinstance(ref, str):
            raise ArgumentsInvalid("give exactly one of tool_id or function_id")
        args = body.get("arguments", body.get("input_data"))
        key = request.headers.get("idempotency-key", body.get("idempotency_key"))
        return 202, self._keyed(key, ref, args).to_dict()

    def _keyed(self, key: str | None, ref: str, args: Any) -> Job:
        if key is None:
            job = self._run(ref, args)
        else:
            digest = json.dumps([ref, args], sort_keys=True)
            with self._lock:
                seen = self._keys.get(key)
            if seen is not None:
                if seen[1] != digest:
                    raise IdempotencyKeyReused(
                        f"idempotency key {key!r} was used by job {seen[0]} for another request"
                    )
                return self.jobs[seen[0]]
            job = self._run(ref, args, key)
            with self._lock:
                self._keys[key] = (job.id, digest)
        self.jobs[job.id] = job
        return job

    def _job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return job

    def get_job(self, request: httpx.Request, job_id: str) -> Answer:
        return 200, self._job(job_id).to_dict()

    def cancel_job(self, request: httpx.Request, job_id: str) -> Answer:
        job = self._job(job_id)
        raise JobAlreadyFinished(f"job {job_id} has already ended ({job.status.value})")

    def events(self, request: httpx.Request, job_id: str) -> Answer:
        job = self._job(job_id).to_dict()
        base = {"uuid": job["uuid"], "status": job["status"], "job": job}
        stream = [{"event": "snapshot", **base}, {"event": "finished", **base}]
        return 200, "".join(f"event: {e['event']}\ndata: {json.dumps(e)}\n\n" for e in stream)

    # -- search ---------------------------------------------------------------------------

    def ranked(self, query: str, k: int, raw_filter: Any = None) -> list[tuple[Tool, float]]:
        """BM25 over the registry's tools (built per query: registries here are small)."""
        from toolrun.retrieval.index import ToolIndex
        from toolrun.retrieval.text import tool_text

        where = parse_filter(raw_filter, roots=DOCUMENT_FIELDS) if raw_filter else None
        index = ToolIndex()
        tools = {name: self.shown(name) for name in self.registry.names()}
        for name, tool in tools.items():
            index.upsert(name, tool_text(tool), tool.to_document())
        hits = index.search(query, k, where, mode="bm25")
        return [(tools[hit.tool_id], hit.score) for hit in hits if hit.score > 0]

    def search(self, request: httpx.Request) -> Answer:
        body = _object(_body(request), "a search")
        query, k = body.get("query"), body.get("k", 10)
        if not isinstance(query, str) or not query or not isinstance(k, int) or k < 1:
            raise ArgumentsInvalid("a search needs a query (a non-empty string) and k >= 1")
        results = [
            {
                "tool_id": tool.id,
                "score": score,
                "scores": {"bm25": score, "dense": 0.0},
                "tool": to_seed(tool, "tool"),
            }
            for tool, score in self.ranked(query, k, body.get("filter"))
        ]
        return 200, {"results": results}

    def execute(self, request: httpx.Request) -> Answer:
        raise NotSupportedHere(
            "execute needs a toolrun server (its natural-language router and sessions); "
            "the in-process backend runs tools by name: use invoke"
        )


class LocalTransport(httpx.BaseTransport):
    """httpx transport answering from a :class:`LocalRouter`."""

    def __init__(self, registry: Registry | LocalRouter) -> None:
        self.router = registry if isinstance(registry, LocalRouter) else LocalRouter(registry)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        return self.router.handle(request)


class AsyncLocalTransport(httpx.AsyncBaseTransport):
    """The async twin of :class:`LocalTransport`; calls run in a worker thread."""

    def __init__(self, registry: Registry | LocalRouter) -> None:
        self.router = registry if isinstance(registry, LocalRouter) else LocalRouter(registry)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        return await asyncio.to_thread(self.router.handle, request)
