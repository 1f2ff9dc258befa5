"""The blocking client: :class:`Client` and its :class:`JobHandle`."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx

from toolrun.client import calls
from toolrun.client.calls import (
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    Call,
    Definition,
    Mode,
    failure,
    stream_timeout,
)
from toolrun.client.errors import from_body
from toolrun.client.events import SSEDecoder, decode, ws_url
from toolrun.client.models import (
    ExecuteResult,
    FunctionList,
    JobEvent,
    JobInfo,
    JobStatus,
    Result,
    SearchHit,
)
from toolrun.client.retry import NO_RETRY, Retry
from toolrun.registry.tool import Tool

if TYPE_CHECKING:
    from toolrun.client.local import LocalRouter
    from toolrun.registry.registry import Registry

T = TypeVar("T")
Via = Literal["websocket", "sse"]


class Client:
    """A toolrun server's REST API (``Client("http://127.0.0.1:8000")``), or a
    :class:`~toolrun.registry.registry.Registry` in this process (``Client.local(registry)``).

    ``timeout`` is httpx's (seconds, or an ``httpx.Timeout``); ``retry`` says which failed
    requests are sent again (:mod:`toolrun.client.retry`); ``headers`` go with every request
    and WebSocket. Errors are :mod:`toolrun.client.errors`; a failing tool is not one.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: Retry | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.retry = retry or Retry()
        self.headers = dict(headers or {})
        self._http = httpx.Client(
            base_url=base_url, headers=self.headers, timeout=self.timeout, transport=transport
        )
        self._router: LocalRouter | None = None

    @classmethod
    def local(cls, registry: Registry, **options: Any) -> Client:
        """The same calls against ``registry``, in this process (see :mod:`.local`)."""
        from toolrun.client.local import LOCAL_URL, LocalTransport

        transport = LocalTransport(registry)
        options.setdefault("retry", NO_RETRY)
        client = cls(LOCAL_URL, transport=transport, **options)
        client._router = transport.router
        return client

    @property
    def base_url(self) -> httpx.URL:
        return self._http.base_url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def send(self, call: Call[T]) -> T:
        """Make one call, retrying as :attr:`retry` allows."""
        request = call.request(self._http, self.timeout)
        attempt = 1
        while True:
            try:
                reply = self._http.send(request)
            except httpx.TransportError as exc:
                delay = self.retry.after_error(attempt, exc, call.retry_safe)
                if delay is None:
                    raise failure(exc, request) from exc
            else:
                delay = self.retry.after_reply(attempt, reply, call.retry_safe)
                if delay is None:
                    return call.answer(reply)
                reply.close()
            time.sleep(delay)
            attempt += 1

    # -- tools ----------------------------------------------------------------------------

    def list_functions(
        self,
        filter: Mapping[str, Any] | None = None,
        query: str | None = None,
        *,
        k: int = 10,
        limit: int | None = None,
    ) -> FunctionList:
        """Every function; those matching a Mongo-style ``filter``; the ``k`` best for a
        ``query`` in words; or the best of those matching the filter."""
        return self.send(calls.list_functions(filter, query, k, limit))

    def get(self, function: str | Tool) -> Tool:
        return self.send(calls.get(function))

    def register(self, definition: Definition) -> Tool:
        """Create a function from a :class:`Tool`, a definition in any shape the server takes
        (toolrun, seed, OpenAI, MCP) or a Python function (remotely: one the server may import,
        see ``TOOLRUN_REMOTE_PYTHON_MODULES``)."""
        if self._router is not None and callable(definition) and not isinstance(definition, Tool):
            return self._router.register_callable(definition)
        return self.send(calls.register(definition))

    def update(
        self, function: str | Tool, changes: Mapping[str, Any] | None = None, **fields: Any
    ) -> Tool:
        """A partial update: ``update("adder", description="Adds.")``."""
        return self.send(calls.update(function, {**(changes or {}), **fields}))

    def delete(self, function: str | Tool) -> str:
        """Delete a function; returns its id."""
        return self.send(calls.delete(function))

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        mode: Mode = "hybrid",
    ) -> list[SearchHit]:
        return self.send(calls.search(query, k, filter, mode))

    # -- calls ----------------------------------------------------------------------------

    def invoke(
        self,
        function: str | Tool,
        args: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Result:
        """Call and wait: the tool's Response (``isError`` when the tool failed). Retried
        after a lost answer only with an ``idempotency_key``."""
        return self.send(
            calls.invoke(function, args, idempotency_key=idempotency_key, timeout_s=timeout)
        )

    def submit(
        self,
        function: str | Tool,
        args: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> JobHandle:
        """Queue a call; always keyed, so a retried submit starts one job."""
        info = self.send(calls.submit(function, args, idempotency_key=idempotency_key))
        return JobHandle(self, info.uuid, info)

    def job(self, job_id: str) -> JobHandle:
        """A handle on a job submitted earlier."""
        return JobHandle(self, job_id)

    def execute(
        self,
        prompt: str,
        session_id: str | None = None,
        *,
        filter: Mapping[str, Any] | None = None,
        k: int = 5,
        dry_run: bool = False,
    ) -> ExecuteResult:
        """Seed 000's ``/execute``: find the tool a prompt asks for, fill its arguments, run it.
        Needs a server (the in-process backend raises ``NotSupported``)."""
        return self.send(calls.execute(prompt, session_id, filter=filter, k=k, dry_run=dry_run))


class JobHandle:
    """One queued call: :meth:`status`, :meth:`result`, :meth:`cancel`, :meth:`events`."""

    def __init__(self, client: Client, job_id: str, info: JobInfo | None = None) -> None:
        self.client = client
        self.id = job_id
        self.last = info

    def __repr__(self) -> str:
        return f"JobHandle({self.id!r})"

    def info(self) -> JobInfo:
        self.last = self.client.send(calls.get_job(self.id))
        return self.last

    def status(self) -> JobStatus:
        return self.info().status

    def result(self, timeout: float | None = None) -> Result:
        """Wait (by long polls, ``GET /jobs/{uuid}?wait_s=``) up to ``timeout`` seconds (None:
        as long as it takes) and return the job's Response; ``ClientTimeout`` if it has none
        by then. A failed or cancelled job answers with an ``isError`` Response."""
        deadline = calls.deadline_after(timeout)
        while True:
            wait, last = calls.next_wait(deadline)
            self.last = self.client.send(calls.get_job(self.id, wait))
            if self.last.finished:
                return self.last.response()
            if last:
                raise calls.still_running(self.last, timeout)

    def cancel(self) -> JobInfo:
        """Cancel a queued or running job (``Conflict`` if it has ended)."""
        self.last = self.client.send(calls.cancel_job(self.id))
        return self.last

    def events(self, *, via: Via | None = None) -> Iterator[JobEvent]:
        """The job's events until ``finished``: over the WebSocket (``via="sse"``: Server-Sent
        Events; the in-process backend always uses those)."""
        if via == "sse" or self.client._router is not None:
            yield from self._sse()
        else:
            yield from self._websocket()

    def _websocket(self) -> Iterator[JobEvent]:
        from websockets.exceptions import ConnectionClosedError, WebSocketException
        from websockets.sync.client import connect

        url = ws_url(self.client.base_url, calls.events_path(self.id))
        try:
            with connect(
                url,
                additional_headers=self.client.headers,
                open_timeout=self.client.timeout.connect,
            ) as socket:
                for message in socket:
                    event = decode(message)
                    yield event
                    if event.event == "finished":
                        return
        except (OSError, ConnectionClosedError, WebSocketException) as exc:
            raise failure(exc, None) from exc

    def _sse(self) -> Iterator[JobEvent]:
        decoder = SSEDecoder()
        path = calls.events_path(self.id)
        timeout = stream_timeout(self.client.timeout)
        try:
            with self.client._http.stream("GET", path, timeout=timeout) as reply:
                if not reply.is_success:
                    raise from_body(reply.status_code, reply.read())
                for line in reply.iter_lines():
                    data = decoder.feed(line)
                    if data is not None:
                        yield decode(data)
        except httpx.TransportError as exc:
            raise failure(exc, None) from exc
