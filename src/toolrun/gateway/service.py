"""The gateway: a validated request in, an OpenAI chat completion (or its stream) out.

:class:`Gateway` holds what lives as long as the server: the upstreams and their ``auto``
verdicts, the API keys and rate limits, the sandbox recorder and the request log. Per request
it picks the way to ask the upstream (:meth:`Gateway.turn`: native, emulated, or ``auto``: native
until the upstream refuses ``tools`` with a 400, then emulated for good), runs the server-side
tool loop when ``toolrun_tools`` asks for it, and shapes the answer. Upstream failures become
:class:`~toolrun.gateway.errors.APIError`s: a 400 from the upstream about the request (context
too long, a bad option) is the client's 400, anything else a 502.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from toolrun.config import Settings
from toolrun.gateway.auth import KeyRing, RateLimiter
from toolrun.gateway.completion import Turn, Usage, completion_body, completion_id, now
from toolrun.gateway.emulate import Ask, emulated_turn
from toolrun.gateway.errors import APIError, InvalidRequest, UpstreamFailed
from toolrun.gateway.log import RequestLog
from toolrun.gateway.native import native_body, native_turn
from toolrun.gateway.record import Recorder
from toolrun.gateway.schema import OWN_FIELDS, ChatRequest
from toolrun.gateway.server_tools import resolve, run_loop
from toolrun.gateway.streaming import DONE, ChunkMaker, NativeStream, sse, turn_chunks
from toolrun.gateway.upstreams import Upstream, Upstreams, passthrough_options, refuses_tools
from toolrun.llm.errors import LLMError, LLMRejected
from toolrun.platform import Platform


@dataclass
class Meta:
    """What the log keeps about how a request was answered."""

    id: str = field(default_factory=completion_id)
    created: int = field(default_factory=now)
    mode: str | None = None
    usage: Usage = field(default_factory=Usage)


class Gateway:
    """See the module docstring; one per app, closed with :meth:`aclose`."""

    def __init__(
        self, settings: Settings, platform: Platform, *, api_keys: Iterable[str] = ()
    ) -> None:
        self.settings = settings
        self.platform = platform
        self.upstreams = Upstreams.from_settings(settings)
        configured = [k.get_secret_value() for k in settings.gateway_api_keys]
        self.keys = KeyRing([*configured, *api_keys])
        self.limiter = RateLimiter(settings.gateway_rate_limit)
        self.recorder = Recorder(settings.sandbox)
        secrets = [
            *self.keys.secrets(),
            *self.upstreams.secrets(),
            *(s.get_secret_value() for s in settings.secrets.values()),
        ]
        self.log = (
            RequestLog(platform.engine, secrets=secrets, body_bytes=settings.gateway_log_body_bytes)
            if settings.gateway_log
            else None
        )

    async def aclose(self) -> None:
        await self.upstreams.aclose()
        if self.log is not None:
            self.log.close()

    def models(self) -> list[dict[str, Any]]:
        return [
            {"id": u.name, "object": "model", "created": 0, "owned_by": "toolrun"}
            for u in self.upstreams
        ]

    # -- one model turn

    async def turn(self, upstream: Upstream, ask: Ask, meta: Meta) -> Turn:
        """The model's answer to ``ask`` in the upstream's mode (``auto`` decided here)."""
        native = self.upstreams.uses_native(upstream)
        with _upstream_errors():
            if native is None and ask.tools:
                try:
                    turn = await native_turn(upstream, ask, meta.usage)
                except LLMRejected as exc:
                    if not refuses_tools(exc):
                        raise
                    self.upstreams.record(upstream, False)
                else:
                    self.upstreams.record(upstream, True)
                    meta.mode = "native"
                    return turn
                native = False
            if native is None or native:
                meta.mode = "native"
                return await native_turn(upstream, ask, meta.usage)
            meta.mode = "emulate"
            return await emulated_turn(upstream, ask, meta.usage, self.recorder)

    # -- whole requests

    def ask(self, request: ChatRequest, raw: dict[str, Any]) -> Ask:
        choice = raw.get("tool_choice")
        return Ask(
            messages=list(raw["messages"]),
            tools=list(raw.get("tools") or []),
            tool_choice=choice if request.tools or request.toolrun_tools else None,
            parallel=request.parallel_tool_calls is not False,
            options=passthrough_options(raw, OWN_FIELDS),
        )

    async def final_turn(
        self, upstream: Upstream, request: ChatRequest, ask: Ask, meta: Meta
    ) -> tuple[Turn, dict[str, Any]]:
        """The turn for the client, after the server-side tool loop if there is one."""
        if not request.toolrun_tools:
            return await self.turn(upstream, ask, meta), {}
        names = [t.function.name for t in request.tools or []]
        server = await resolve(self.platform, request.toolrun_tools, names)
        ask.tools = [*ask.tools, *server.entries]

        async def turn_fn(current: Ask) -> Turn:
            return await self.turn(upstream, current, meta)

        turn, trace = await run_loop(
            self.platform, ask, server, turn_fn, self.settings.gateway_max_steps
        )
        return turn, {"toolrun_trace": trace}

    async def complete(self, request: ChatRequest, raw: dict[str, Any], meta: Meta) -> Any:
        """A ``chat.completion`` body."""
        upstream = self.upstreams.get(request.model)
        turn, extra = await self.final_turn(upstream, request, self.ask(request, raw), meta)
        return completion_body(
            id=meta.id,
            created=meta.created,
            model=request.model,
            turn=turn,
            usage=meta.usage,
            extra=extra,
        )

    async def stream(
        self, request: ChatRequest, raw: dict[str, Any], meta: Meta, summary: dict[str, Any]
    ) -> AsyncIterator[bytes]:
        """The stream's events. Everything that can fail with a status fails before this
        returns (the upstream is asked here, the iterator only relays); ``summary`` is
        filled as the stream goes, for the log."""
        upstream = self.upstreams.get(request.model)
        ask = self.ask(request, raw)
        include = bool(request.stream_options and request.stream_options.include_usage)
        maker = ChunkMaker(meta.id, meta.created, request.model, include_usage=include)
        native = self.upstreams.uses_native(upstream)
        if not request.toolrun_tools and native is not False and upstream.mode != "emulate":
            relay = await self._open_native(upstream, ask, maker, include, native, meta)
            if relay is not None:
                return relay(summary)
        turn, extra = await self.final_turn(upstream, request, ask, meta)
        summary["turn"] = turn.message()
        return _replay([sse(c) for c in turn_chunks(maker, turn, meta.usage, extra)])

    async def _open_native(
        self,
        upstream: Upstream,
        ask: Ask,
        maker: ChunkMaker,
        include_usage: bool,
        native: bool | None,
        meta: Meta,
    ) -> Callable[[dict[str, Any]], AsyncIterator[bytes]] | None:
        """The relay of the upstream's stream, opened (its errors raised here); ``None`` when
        an untried ``auto`` upstream refuses tools (emulate instead)."""
        body = {**native_body(upstream, ask), "stream": True}
        if include_usage:
            body["stream_options"] = {"include_usage": True}
        stack = contextlib.AsyncExitStack()
        try:
            with _upstream_errors():
                response = await stack.enter_async_context(
                    upstream.client.stream("/chat/completions", body)
                )
        except APIError as exc:
            cause = exc.__cause__
            refused = isinstance(cause, LLMError) and refuses_tools(cause)
            if native is None and ask.tools and refused:
                self.upstreams.record(upstream, False)
                return None  # emulate instead
            raise
        if native is None and ask.tools:
            self.upstreams.record(upstream, True)
        meta.mode = "native"
        meta.usage.rounds += 1
        relay = NativeStream(maker, drop_calls=ask.tool_choice == "none")

        async def events(summary: dict[str, Any]) -> AsyncIterator[bytes]:
            async with stack:
                try:
                    async for line in response.aiter_lines():
                        data = _event(line)
                        if data is None:
                            continue
                        if data == "[DONE]":
                            break
                        if "error" in data:
                            yield sse(data)
                            summary["error"] = data["error"]
                            return
                        for chunk in relay.feed(data):
                            yield sse(chunk)
                    for chunk in relay.closing():
                        yield sse(chunk)
                    yield DONE
                except Exception as exc:  # the upstream broke off: tell the client, in band
                    error = UpstreamFailed(f"the model server's stream broke off: {exc}")
                    summary["error"] = error.to_openai()["error"]
                    yield sse(error.to_openai())
                finally:
                    meta.usage.prompt_tokens += relay.usage.prompt_tokens
                    meta.usage.completion_tokens += relay.usage.completion_tokens
                    meta.usage.total_tokens += relay.usage.total_tokens
                    summary["turn"] = {"content": "".join(relay.content) or None,
                                       "tool_calls": relay.calls}  # fmt: skip

        return events


async def _replay(events: list[bytes]) -> AsyncIterator[bytes]:
    for event in events:
        yield event
    yield DONE


def _event(line: str) -> Any:
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if payload == "[DONE]":
        return payload
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def _upstream_errors() -> Iterator[None]:
    """LLM errors as the client's errors: the upstream's 400 about the request stays a 400,
    anything else is a 502."""
    try:
        yield
    except LLMRejected as exc:
        if exc.status in (400, 413, 422):
            raise InvalidRequest(
                f"The model server rejected the request: {exc.upstream_message}",
                code="upstream_rejected",
            ) from exc
        raise UpstreamFailed(exc.message) from exc
    except LLMError as exc:
        raise UpstreamFailed(exc.message) from exc
