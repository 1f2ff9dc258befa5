"""What the gateway answers: one model turn (:class:`Turn`) as an OpenAI ``chat.completion``.

A turn is the same whichever way it was made (the upstream's own tool calls, or calls read from
its text): content, reasoning, ``tool_calls`` entries whose ``arguments`` are JSON text, and
the finish reason (``tool_calls`` whenever there are calls). :class:`Usage` sums the upstream's
token counts over every round a request took (repairs, re-prompts, server-side tools).
"""

from __future__ import annotations

import json
import secrets
import string
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_ALPHABET = string.ascii_letters + string.digits


def completion_id() -> str:
    """``chatcmpl-`` and 29 letters and digits, as OpenAI's ids look."""
    return "chatcmpl-" + "".join(secrets.choice(_ALPHABET) for _ in range(29))


def now() -> int:
    return int(time.time())


@dataclass
class Usage:
    """Token counts summed over the upstream rounds of one request."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    rounds: int = 0

    def add(self, usage: Any) -> None:
        """Count one upstream round and its ``usage`` object (when it sent one)."""
        self.rounds += 1
        if not isinstance(usage, Mapping):
            return
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        self.prompt_tokens += prompt if isinstance(prompt, int) else 0
        self.completion_tokens += completion if isinstance(completion, int) else 0
        total = usage.get("total_tokens")
        self.total_tokens += total if isinstance(total, int) else 0

    def to_dict(self) -> dict[str, int]:
        total = max(self.total_tokens, self.prompt_tokens + self.completion_tokens)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": total,
        }


@dataclass(frozen=True)
class Turn:
    """One assistant answer: text, reasoning and calls (OpenAI ``tool_calls`` entries)."""

    content: str | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()
    reasoning: str | None = None
    finish_reason: str = "stop"
    system_fingerprint: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # refusal, logprobs, annotations

    @property
    def finish(self) -> str:
        return "tool_calls" if self.tool_calls else self.finish_reason

    def message(self) -> dict[str, Any]:
        """The ``choices[0].message`` object."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content, "refusal": None}
        message.update({k: v for k, v in self.extra.items() if k != "logprobs"})
        if self.reasoning is not None:
            message["reasoning_content"] = self.reasoning
        if self.tool_calls:
            message["tool_calls"] = [dict(call) for call in self.tool_calls]
        return message

    def to_history(self) -> dict[str, Any]:
        """This turn as a ``messages[]`` entry, to continue the conversation upstream."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [dict(call) for call in self.tool_calls]
        return message

    def keeping(self, calls: Sequence[Mapping[str, Any]]) -> Turn:
        """The same turn with only ``calls``."""
        return Turn(
            self.content,
            tuple(dict(c) for c in calls),
            self.reasoning,
            "stop" if self.finish_reason == "tool_calls" and not calls else self.finish_reason,
            self.system_fingerprint,
            self.extra,
        )


def completion_body(
    *,
    id: str,
    created: int,
    model: str,
    turn: Turn,
    usage: Usage,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion`` object; ``extra`` adds top-level fields (``toolrun_trace``)."""
    body: dict[str, Any] = {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": turn.message(),
                "logprobs": turn.extra.get("logprobs"),
                "finish_reason": turn.finish,
            }
        ],
        "usage": usage.to_dict(),
        "system_fingerprint": turn.system_fingerprint,
    }
    body.update(extra or {})
    return body


def tool_call_entry(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    """An OpenAI ``tool_calls`` entry; ``arguments`` always JSON text."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}
