"""An OpenAI-compatible chat client (vLLM, llama.cpp server, Ollama, hosted APIs) over httpx.

One :class:`httpx.AsyncClient` is reused for every request. Connection errors, timeouts and
HTTP 408/409/429/5xx are retried (:class:`RetryPolicy`: exponential backoff with jitter, or
the server's ``Retry-After``); other 4xx are not (:class:`LLMRejected`), a 2xx that is not a
chat completion neither (:class:`LLMBadResponse`), and running out of attempts is
:class:`LLMUnavailable`. :meth:`LLMClient.post_json` and :meth:`LLMClient.stream` (server-sent
events, unread) are the wire-agnostic part a gateway reuses; :meth:`LLMClient.chat` adds the
chat-completions format (:mod:`toolrun.llm.wire`).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from toolrun import __version__
from toolrun.llm.errors import LLMBadResponse, LLMRejected, LLMUnavailable
from toolrun.llm.wire import AssistantMessage, chat_request, parse_completion, upstream_message

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 429})
_HINTS = {
    401: "check the API key",
    403: "check the API key and what it may access",
    404: "check the base URL (most servers want it to end in /v1) and the model name",
}
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait between attempts. A ``Retry-After`` longer than
    ``retry_after_max_s`` ends the retries at once: waiting less would only fail again."""

    max_retries: int = 2
    backoff_s: float = 0.5
    backoff_max_s: float = 8.0
    retry_after_max_s: float = 30.0

    def backoff(self, retry: int) -> float:
        """Delay before retry number ``retry`` (1-based): half fixed, half random."""
        ceiling = min(self.backoff_max_s, self.backoff_s * 2.0 ** (retry - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def retryable(status: int) -> bool:
    return status in RETRY_STATUSES or status >= 500


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class LLMClient:
    """``POST {base_url}/chat/completions`` with retries; close with :meth:`aclose`."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 2,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        sleep: Sleep = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy(max_retries=max_retries)
        self._headers = {"User-Agent": f"toolrun/{__version__}", **(headers or {})}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._sleep = sleep
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:  # never the key
        return f"LLMClient(base_url={self.base_url!r}, model={self.model!r})"

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                headers=self._headers,
                timeout=httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 10.0)),
                transport=self._transport,
            )
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AssistantMessage:
        body = chat_request(self.model, messages, tools=tools, tool_choice=tool_choice, **options)
        reply = await self.post_json("/chat/completions", body)
        try:
            return parse_completion(reply)
        except ValueError as exc:
            raise LLMBadResponse(
                f"the LLM at {self.base_url} answered with something that is not a chat "
                f"completion: {exc}"
            ) from exc

    async def post_json(self, path: str, body: Mapping[str, Any]) -> Any:
        """POST ``body`` to ``{base_url}{path}`` and return the decoded JSON reply, retrying
        as the policy says."""
        response = await self._send(path, body, stream=False)
        return self._decode(response)

    @contextlib.asynccontextmanager
    async def stream(self, path: str, body: Mapping[str, Any]) -> AsyncIterator[httpx.Response]:
        """POST ``body`` and yield the successful response unread (``aiter_lines()`` for
        server-sent events). Retries happen as for :meth:`post_json`, all before the first
        byte of a successful answer; an error status is read and raised, never yielded."""
        response = await self._send(path, body, stream=True)
        try:
            yield response
        finally:
            await response.aclose()

    async def _send(self, path: str, body: Mapping[str, Any], *, stream: bool) -> httpx.Response:
        url = f"{self.base_url}{path}"
        attempts = self.retry.max_retries + 1
        for attempt in range(1, attempts + 1):
            delay: float | None = None
            status: int | None = None
            message: str | None = None
            try:
                client = self._http()
                response = await client.send(
                    client.build_request("POST", url, json=body), stream=stream
                )
                if stream and not response.is_success:
                    await response.aread()
                    await response.aclose()
            except httpx.TimeoutException as exc:
                problem = f"no answer within {self.timeout_s:g}s ({type(exc).__name__})"
            except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                problem = f"cannot reach it ({type(exc).__name__}: {exc or 'no detail'})"
            except httpx.HTTPError as exc:  # a malformed URL, an unsupported scheme...
                raise LLMUnavailable(
                    f"cannot send to the LLM at {url}: {type(exc).__name__}: {exc}; "
                    "check the base URL"
                ) from exc
            else:
                if response.is_success:
                    return response
                status, message = response.status_code, upstream_message(response.text)
                if not retryable(status):
                    raise self._rejected(status, message)
                problem = f"HTTP {status}: {message}"
                delay = parse_retry_after(response.headers.get("retry-after"))
                if delay is not None and delay > self.retry.retry_after_max_s:
                    raise LLMUnavailable(
                        f"the LLM at {self.base_url} is unavailable ({problem}) and asks to "
                        f"retry after {delay:g}s, longer than the "
                        f"{self.retry.retry_after_max_s:g}s toolrun waits",
                        status=status,
                        upstream_message=message,
                    )
            if attempt == attempts:
                break
            wait = delay if delay is not None else self.retry.backoff(attempt)
            log.warning(
                "LLM at %s: %s; retry %d/%d in %.2fs",
                self.base_url,
                problem,
                attempt,
                self.retry.max_retries,
                wait,
            )
            await self._sleep(wait)
        tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        raise LLMUnavailable(
            f"the LLM at {self.base_url} did not answer after {tries}: {problem}",
            status=status,
            upstream_message=message,
        )

    def _rejected(self, status: int, message: str) -> LLMRejected:
        hint = _HINTS.get(status)
        return LLMRejected(
            f"the LLM at {self.base_url} refused the request (HTTP {status}): {message}"
            + (f"; {hint}" if hint else ""),
            status=status,
            upstream_message=message,
        )

    def _decode(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            kind = response.headers.get("content-type", "no content type")
            raise LLMBadResponse(
                f"the LLM at {self.base_url} answered HTTP {response.status_code} with a body "
                f"that is not JSON ({kind}): {upstream_message(response.text)}",
                status=response.status_code,
            ) from exc
