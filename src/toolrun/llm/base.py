"""What every LLM backend offers: one chat turn, and closing. :class:`LLMClient` speaks to
an OpenAI-compatible server; :class:`FakeLLM` replays scripted replies in-process."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from toolrun.llm.wire import AssistantMessage


class ChatBackend(Protocol):
    model: str

    async def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AssistantMessage:
        """The assistant's reply to ``messages``; raises :class:`toolrun.llm.errors.LLMError`."""
        ...

    async def aclose(self) -> None: ...
