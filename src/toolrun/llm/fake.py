"""A deterministic in-process LLM backend for tests: scripted replies, recorded requests."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from toolrun.llm.errors import LLMError
from toolrun.llm.wire import AssistantMessage, chat_request

Script = AssistantMessage | LLMError | Callable[[dict[str, Any]], AssistantMessage]


class FakeLLM:
    """Answers each :meth:`chat` with the next scripted item: an :class:`AssistantMessage`, an
    :class:`LLMError` (raised), or a function of the request body. ``requests`` holds every
    body in the exact wire shape :class:`~toolrun.llm.client.LLMClient` would send.
    Running out of script is an :class:`AssertionError`, so a test cannot pass by accident."""

    def __init__(self, replies: Iterable[Script] = (), *, model: str = "fake-model") -> None:
        self.model = model
        self.script: deque[Script] = deque(replies)
        self.requests: list[dict[str, Any]] = []
        self.closed = False

    def add(self, *replies: Script) -> FakeLLM:
        self.script.extend(replies)
        return self

    async def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AssistantMessage:
        body = chat_request(self.model, messages, tools=tools, tool_choice=tool_choice, **options)
        self.requests.append(body)
        if not self.script:
            raise AssertionError(f"FakeLLM: no scripted reply for request {len(self.requests)}")
        item = self.script.popleft()
        if isinstance(item, LLMError):
            raise item
        return item(body) if callable(item) else item

    async def aclose(self) -> None:
        self.closed = True
