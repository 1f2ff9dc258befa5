"""The asyncio client: :class:`AsyncClient` and its :class:`AsyncJobHandle` (the same calls as
:mod:`toolrun.client.sync`, awaited)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

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
from toolrun.client.sync import Via
from toolrun.registry.tool import Tool

if TYPE_CHECKING:
    from toolrun.client.local import LocalRouter
    from toolrun.registry.registry import Registry

T = TypeVar("T")


class AsyncClient:
    """:class:`~toolrun.client.sync.Client` for event loops: every call is awaited, and
    :meth:`AsyncJobHandle.events` is an async iterator."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: Retry | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.retry = retry or Retry()
        self.headers = dict(headers or {})
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=self.headers, timeout=self.timeout, transport=transport
        )
        self._router: LocalRouter | None = None

    @classmethod
    def local(cls, registry: Registry, **options: Any) -> AsyncClient:
        """The same calls against ``registry``, in this process (tools run in a thread)."""
        from toolrun.client.local import LOCAL_URL, AsyncLocalTransport

        transport = AsyncLocalTransport(registry)
        options.setdefault("retry", NO_RETRY)
        client = cls(LOCAL_URL, transport=transport, **options)
        client._router = transport.router
        return client

    @property
    def base_url(self) -> httpx.URL:
        return self._http.base_url

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def send(self, call: Call[T]) -> T:
        request = call.request(self._http, self.timeout)
        attempt = 1
        while True:
            try:
                reply = await self._http.send(request)
            except httpx.TransportError as exc:
                delay = self.retry.after_error(attempt, exc, call.retry_safe)
                if delay is None:
                    raise failure(exc, request) from exc
            else:
                delay = self.retry.after_reply(attempt, reply, call.retry_safe)
                if delay is None:
                    return call.answer(reply)
                await reply.aclose()
            await asyncio.sleep(delay)
            attempt += 1

    # -- tools ----------------------------------------------------------------------------

    async def list_functions(
        self,
        filter: Mapping[str, Any] | None = None,
        query: str | None = None,
        *,
        k: int = 10,
        limit: int | None = None,
    ) -> FunctionList:
        return await self.send(calls.list_functions(filter, query, k, limit))

    async def get(self, function: str | Tool) -> Tool:
        return await self.send(calls.get(function))

    async def register(self, definition: Definition) -> Tool:
        if self._router is not None and callable(definition) and not isinstance(definition, Tool):
            return await asyncio.to_thread(self._router.register_callable, definition)
        return await self.send(calls.register(definition))

    async def update(
        self, function: str | Tool, changes: Mapping[str, Any] | None = None, **fields: Any
    ) -> Tool:
        return await self.send(calls.update(function, {**(changes or {}), **fields}))

    async def delete(self, function: str | Tool) -> str:
        return await self.send(calls.delete(function))

    async def search(
        self,
        query: str,
        *,
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        mode: Mode = "hybrid",
    ) -> list[SearchHit]:
        return await self.send(calls.search(query, k, filter, mode))

    # -- calls ----------------------------------------------------------------------------

    async def invoke(
        self,
        function: str | Tool,
        args: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Result:
        return await self.send(
            calls.invoke(function, args, idempotency_key=idempotency_key, timeout_s=timeout)
        )

    async def submit(
        self,
        function: str | Tool,
        args: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> AsyncJobHandle:
        info = await self.send(calls.submit(function, args, idempotency_key=idempotency_key))
        return AsyncJobHandle(self, info.uuid, info)

    def job(self, job_id: str) -> AsyncJobHandle:
        return AsyncJobHandle(self, job_id)

    async def execute(
        self,
        prompt: str,
        session_id: str | None = None,
        *,
        filter: Mapping[str, Any] | None = None,
        k: int = 5,
        dry_run: bool = False,
    ) -> ExecuteResult:
        return await self.send(
            calls.execute(prompt, session_id, filter=filter, k=k, dry_run=dry_run)
        )


class AsyncJobHandle:
    """:class:`~toolrun.client.sync.JobHandle`, awaited; ``events()`` is an async iterator."""

    def __init__(self, client: AsyncClient, job_id: str, info: JobInfo | None = None) -> None:
        self.client = client
        self.id = job_id
        self.last = info

    def __repr__(self) -> str:
        return f"AsyncJobHandle({self.id!r})"

    async def info(self) -> JobInfo:
        self.last = await self.client.send(calls.get_job(self.id))
        return self.last

    async def status(self) -> JobStatus:
        return (await self.info()).status

    async def result(self, timeout: float | None = None) -> Result:
        deadline = calls.deadline_after(timeout)
        while True:
            wait, last = calls.next_wait(deadline)
            self.last = await self.client.send(calls.get_job(self.id, wait))
            if self.last.finished:
                return self.last.response()
            if last:
                raise calls.still_running(self.last, timeout)

    async def cancel(self) -> JobInfo:
        self.last = await self.client.send(calls.cancel_job(self.id))
        return self.last

    async def events(self, *, via: Via | None = None) -> AsyncIterator[JobEvent]:
        """The job's events until ``finished``, over the WebSocket (or ``via="sse"``)."""
        stream = self._sse() if via == "sse" or self.client._router else self._websocket()
        async with contextlib.aclosing(stream) as events:
            async for event in events:
                yield event

    async def _websocket(self) -> AsyncGenerator[JobEvent, None]:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosedError, WebSocketException

        url = ws_url(self.client.base_url, calls.events_path(self.id))
        try:
            async with connect(
                url,
                additional_headers=self.client.headers,
                open_timeout=self.client.timeout.connect,
            ) as socket:
                async for message in socket:
                    event = decode(message)
                    yield event
                    if event.event == "finished":
                        return
        except (OSError, ConnectionClosedError, WebSocketException) as exc:
            raise failure(exc, None) from exc

    async def _sse(self) -> AsyncGenerator[JobEvent, None]:
        decoder = SSEDecoder()
        timeout = stream_timeout(self.client.timeout)
        try:
            async with self.client._http.stream(
                "GET", calls.events_path(self.id), timeout=timeout
            ) as reply:
                if not reply.is_success:
                    raise from_body(reply.status_code, await reply.aread())
                async for line in reply.aiter_lines():
                    data = decoder.feed(line)
                    if data is not None:
                        yield decode(data)
        except httpx.TransportError as exc:
            raise failure(exc, None) from exc
