"""Every SDK call as a value: the HTTP request to make and how to read its answer.

:class:`~toolrun.client.sync.Client` and :class:`~toolrun.client.aio.AsyncClient` send the
same :class:`Call` objects, so the two cannot drift apart. Tools travel in the ``function``
family's routes; lists and reads ask for toolrun's own JSON (``?format=toolrun``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx

from toolrun.client.errors import ClientTimeout, TransportError, from_body
from toolrun.client.models import (
    ExecuteResult,
    FunctionList,
    JobInfo,
    Result,
    SearchHit,
    result_from,
)
from toolrun.client.retry import idempotent
from toolrun.errors import ToolrunError
from toolrun.registry.decorators import get_tool, tool_from_callable
from toolrun.registry.formats import from_seed, seed_path_to_canonical
from toolrun.registry.query import map_paths
from toolrun.registry.tool import Tool

T = TypeVar("T")
Mode = Literal["hybrid", "bm25", "dense"]
Definition = Tool | Mapping[str, Any] | Callable[..., Any]
MAX_WAIT_S = 60.0  # one long poll of GET /jobs/{uuid}?wait_s= (the server allows 300)
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0)


def failure(exc: Exception, request: httpx.Request | None) -> TransportError:
    """The SDK's error for a request (or stream) that got no answer."""
    where = f" ({request.method} {request.url})" if request is not None else ""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return ClientTimeout(f"timed out{where}: {type(exc).__name__}")
    return TransportError(f"no answer{where}: {type(exc).__name__}: {exc}")


def deadline_after(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def next_wait(deadline: float | None) -> tuple[float, bool]:
    """The ``wait_s`` of the next long poll for a job's end, and whether it is the last one
    before ``deadline`` (a ``time.monotonic()`` value; None: no deadline)."""
    if deadline is None:
        return MAX_WAIT_S, False
    left = deadline - time.monotonic()
    wait = max(0.0, min(left, MAX_WAIT_S))
    return wait, left <= wait


def still_running(job: JobInfo, timeout: float | None) -> ClientTimeout:
    return ClientTimeout(f"job {job.uuid} still {job.status.value} after {timeout}s")


def stream_timeout(base: httpx.Timeout) -> httpx.Timeout:
    """An event stream may be quiet for as long as its job runs: no read timeout."""
    return httpx.Timeout(connect=base.connect, read=None, write=base.write, pool=base.pool)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request. ``timeout_s`` replaces the client's read timeout; ``wait_s`` is added to
    it (the server holds the answer that long); ``safe`` overrides the retry rule of
    :mod:`toolrun.client.retry` (read-only POSTs are safe)."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float | None = None
    wait_s: float = 0.0
    safe: bool | None = None

    @property
    def retry_safe(self) -> bool:
        return self.safe if self.safe is not None else idempotent(self.method, self.headers)

    def timeout(self, base: httpx.Timeout) -> httpx.Timeout:
        read = base.read if self.timeout_s is None else self.timeout_s
        if read is not None:
            read += self.wait_s
        return httpx.Timeout(connect=base.connect, read=read, write=base.write, pool=base.pool)

    def request(self, http: httpx.Client | httpx.AsyncClient, base: httpx.Timeout) -> httpx.Request:
        return http.build_request(
            self.method,
            self.path,
            json=self.json,
            params=self.params or None,
            headers=self.headers or None,
            timeout=self.timeout(base),
        )

    def answer(self, reply: httpx.Response) -> T:
        """The parsed answer, or the typed error of an error answer."""
        if not reply.is_success:
            raise from_body(reply.status_code, reply.content)
        return self.parse(reply)


def _path(prefix: str, ref: str, suffix: str = "") -> str:
    return f"{prefix}/{quote(ref, safe=':')}{suffix}"


def ref_of(function: str | Tool) -> str:
    return function.id if isinstance(function, Tool) else function


def _tool(reply: httpx.Response) -> Tool:
    return Tool.model_validate(reply.json())


def _seed_tool(reply: httpx.Response) -> Tool:
    return from_seed(reply.json(), "function")


def _tools(reply: httpx.Response) -> FunctionList:
    return FunctionList(Tool.model_validate(doc) for doc in reply.json())


def _hits(reply: httpx.Response) -> list[SearchHit]:
    return [SearchHit.from_dict(hit) for hit in reply.json()["results"]]


def _result(reply: httpx.Response) -> Result:
    return result_from(reply.json())


def _job(reply: httpx.Response) -> JobInfo:
    return JobInfo.from_dict(reply.json())


def canonical_filter(raw: Any) -> Any:
    """A filter in toolrun's field names (``tool_*`` and ``function_*`` seed names mapped), as
    ``/search`` reads them; a malformed one goes as it is, for the server to explain."""

    def canonical(path: str) -> str:
        return seed_path_to_canonical(seed_path_to_canonical(path, "function"), "tool")

    try:
        return map_paths(raw, canonical)
    except ToolrunError:
        return raw


def as_definition(definition: Definition) -> Any:
    """The JSON a ``POST /function`` takes: toolrun's Tool JSON, or the mapping as given."""
    if isinstance(definition, Tool):
        return definition.model_dump(mode="json", exclude={"created_at", "updated_at"})
    if isinstance(definition, Mapping):
        return dict(definition)
    tool = get_tool(definition) or tool_from_callable(definition)
    return tool.model_dump(mode="json", exclude={"created_at", "updated_at"})


# -- the calls -------------------------------------------------------------------------------


def search(
    query: str, k: int = 10, filter: Any = None, mode: Mode = "hybrid"
) -> Call[list[SearchHit]]:
    body: dict[str, Any] = {"query": query, "k": k, "mode": mode}
    if filter is not None:
        body["filter"] = canonical_filter(filter)
    return Call("POST", "/search", _hits, json=body, safe=True)


def list_functions(
    filter: Any = None, query: str | None = None, k: int = 10, limit: int | None = None
) -> Call[FunctionList]:
    params: dict[str, Any] = {"format": "toolrun"}
    if query is not None and filter is not None:
        ranked = search(query, k, filter)
        return Call(
            "POST",
            ranked.path,
            lambda reply: FunctionList(hit.tool for hit in _hits(reply)),
            json=ranked.json,
            safe=True,
        )
    if query is not None:
        return Call("GET", "/functions", _tools, params={**params, "q": query, "k": k})
    if limit is not None:
        params["limit"] = limit
    if filter is not None:
        return Call("POST", "/functions", _tools, json=filter, params=params, safe=True)
    return Call("GET", "/functions", _tools, params=params)


def get(function: str | Tool) -> Call[Tool]:
    return Call("GET", _path("/function", ref_of(function)), _tool, params={"format": "toolrun"})


def register(definition: Definition) -> Call[Tool]:
    return Call("POST", "/function", _seed_tool, json=as_definition(definition))


def update(function: str | Tool, changes: Mapping[str, Any]) -> Call[Tool]:
    return Call("PUT", _path("/function", ref_of(function)), _seed_tool, json=dict(changes))


def delete(function: str | Tool) -> Call[str]:
    def deleted(reply: httpx.Response) -> str:
        return str(reply.json()["function_id"])

    return Call("DELETE", _path("/function", ref_of(function)), deleted)


def _keyed(key: str | None) -> dict[str, str]:
    return {} if key is None else {"Idempotency-Key": key}


def invoke(
    function: str | Tool,
    args: Mapping[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
    timeout_s: float | None = None,
) -> Call[Result]:
    path = _path("/functions", ref_of(function), "/invoke")
    headers = _keyed(idempotency_key)
    return Call("POST", path, _result, json=dict(args or {}), headers=headers, timeout_s=timeout_s)


def submit(
    function: str | Tool, args: Mapping[str, Any] | None = None, *, idempotency_key: str | None
) -> Call[JobInfo]:
    """Always keyed (a fresh UUID unless one is given), so a retried submit starts one job."""
    body = {"function_id": ref_of(function), "arguments": dict(args or {})}
    headers = _keyed(idempotency_key or str(uuid.uuid4()))
    return Call("POST", "/jobs", _job, json=body, headers=headers)


def get_job(job_id: str, wait_s: float = 0.0) -> Call[JobInfo]:
    params = {"wait_s": wait_s} if wait_s > 0 else {}
    return Call("GET", _path("/jobs", job_id), _job, params=params, wait_s=wait_s)


def cancel_job(job_id: str) -> Call[JobInfo]:
    return Call("DELETE", _path("/jobs", job_id), _job)


def execute(
    prompt: str,
    session_id: str | None = None,
    *,
    filter: Any = None,
    k: int = 5,
    dry_run: bool = False,
) -> Call[ExecuteResult]:
    body: dict[str, Any] = {"prompt": prompt, "k": k, "dry_run": dry_run}
    if session_id is not None:
        body["session_id"] = session_id
    if filter is not None:
        body["filter"] = canonical_filter(filter)

    def parse(reply: httpx.Response) -> ExecuteResult:
        return ExecuteResult.from_dict(reply.json())

    return Call("POST", "/execute", parse, json=body)


def events_path(job_id: str) -> str:
    return _path("/jobs", job_id, "/events")
