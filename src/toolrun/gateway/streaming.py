"""Server-sent events exactly as OpenAI streams a chat completion.

Every event is ``data: {chat.completion.chunk}``; the stream ends with ``data: [DONE]``.

- :func:`turn_chunks` streams a finished :class:`~toolrun.gateway.completion.Turn` (emulated
  turns are read whole before they can be streamed): the role, ``reasoning_content``, the
  content, then each call at its own ``index`` (0..n-1): a first delta with ``id``, ``type``,
  ``function.name`` and empty ``arguments``, then the arguments in fragments; the last chunk
  carries ``finish_reason``, and with ``stream_options.include_usage`` a final chunk with empty
  ``choices`` carries ``usage`` (every other chunk then has ``"usage": null``).
- :class:`NativeStream` passes an upstream's chunks on as they arrive, re-indexing calls
  (servers that put parallel calls all at index 0, or send no index, no id or arguments as
  objects), naming the public model, and making sure of the final ``finish_reason``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from toolrun.gateway.completion import Turn, Usage
from toolrun.gateway.parse import new_call_id

DONE = b"data: [DONE]\n\n"
ARGUMENT_FRAGMENT = 48


def sse(data: Mapping[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


class ChunkMaker:
    """The fixed fields of every chunk of one response."""

    def __init__(self, id: str, created: int, model: str, *, include_usage: bool = False) -> None:
        self.id, self.created, self.model = id, created, model
        self.include_usage = include_usage
        self.fingerprint: str | None = None

    def chunk(self, delta: Mapping[str, Any], finish: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.fingerprint,
            "choices": [{"index": 0, "delta": dict(delta), "logprobs": None,
                         "finish_reason": finish}],
        }  # fmt: skip
        if self.include_usage:
            body["usage"] = None
        return body

    def usage_chunk(self, usage: Usage) -> dict[str, Any]:
        body = self.chunk({})
        body["choices"] = []
        body["usage"] = usage.to_dict()
        return body


def turn_chunks(
    maker: ChunkMaker, turn: Turn, usage: Usage, extra: Mapping[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    """The chunks of a finished turn; ``extra`` rides on the final chunk (``toolrun_trace``)."""
    maker.fingerprint = turn.system_fingerprint
    first: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
    if turn.tool_calls and not turn.content:
        first["content"] = None
    yield maker.chunk(first)
    if turn.reasoning:
        yield maker.chunk({"reasoning_content": turn.reasoning})
    if turn.content:
        yield maker.chunk({"content": turn.content})
    for index, call in enumerate(turn.tool_calls):
        function = call["function"]
        head = {"index": index, "id": call["id"], "type": "function",
                "function": {"name": function["name"], "arguments": ""}}  # fmt: skip
        yield maker.chunk({"tool_calls": [head]})
        text = function["arguments"]
        for start in range(0, len(text), ARGUMENT_FRAGMENT):
            piece = text[start : start + ARGUMENT_FRAGMENT]
            yield maker.chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    last = maker.chunk({}, turn.finish)
    last.update(extra or {})
    yield last
    if maker.include_usage:
        yield maker.usage_chunk(usage)


class NativeStream:
    """Rewrites an upstream's chunks as they arrive; see the module docstring."""

    def __init__(self, maker: ChunkMaker, *, drop_calls: bool = False) -> None:
        self.maker = maker
        self.drop_calls = drop_calls  # tool_choice "none": the server may not call
        self.usage = Usage()
        self.finished = False
        self.calls: list[dict[str, Any]] = []  # accumulated, for the log
        self.content: list[str] = []
        self._by_id: dict[str, int] = {}
        self._by_upstream: dict[int, int] = {}
        self._last: int | None = None
        self._collided = False

    def feed(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Our chunks for one upstream chunk (none, or one)."""
        if isinstance(data.get("usage"), Mapping):
            self.usage.add(data["usage"])
            self.usage.rounds -= 1  # a usage report, not another round
        if isinstance(data.get("system_fingerprint"), str):
            self.maker.fingerprint = data["system_fingerprint"]
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            return []
        choice = choices[0] if isinstance(choices[0], Mapping) else {}
        delta = dict(choice.get("delta") or {})
        if "reasoning" in delta and "reasoning_content" not in delta:
            delta["reasoning_content"] = delta.pop("reasoning")
        calls = delta.pop("tool_calls", None)
        if calls and not self.drop_calls:
            delta["tool_calls"] = [self._call(c) for c in calls if isinstance(c, Mapping)]
        if isinstance(delta.get("content"), str):
            self.content.append(delta["content"])
        finish = choice.get("finish_reason")
        if finish is not None:
            self.finished = True
            finish = "tool_calls" if self.calls else ("stop" if finish == "tool_calls" else finish)
        if not delta and finish is None:
            return []
        return [self.maker.chunk(delta, finish)]

    def closing(self) -> list[dict[str, Any]]:
        """What the upstream left out at the end: the finish chunk, the usage chunk."""
        chunks = []
        if not self.finished:
            chunks.append(self.maker.chunk({}, "tool_calls" if self.calls else "stop"))
        if self.maker.include_usage:
            chunks.append(self.maker.usage_chunk(self.usage))
        return chunks

    def _call(self, delta: Mapping[str, Any]) -> dict[str, Any]:
        upstream = delta.get("index") if isinstance(delta.get("index"), int) else None
        call_id = delta.get("id") if isinstance(delta.get("id"), str) and delta["id"] else None
        raw = delta.get("function")
        function: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        if call_id is not None and call_id in self._by_id:
            index: int | None = self._by_id[call_id]
        elif call_id is not None or self._known(upstream) is None:
            index = None  # a new call
        else:
            index = self._known(upstream)
        out: dict[str, Any] = {}
        if index is None:
            index = len(self.calls)
            call_id = call_id or new_call_id()
            self._by_id[call_id] = index
            if upstream is not None:
                self._collided |= upstream in self._by_upstream
                self._by_upstream[upstream] = index
            self.calls.append({"id": call_id, "name": "", "arguments": ""})
            out = {"index": index, "id": call_id, "type": "function"}
        else:
            out = {"index": index}
        self._last = index
        piece: dict[str, Any] = {}
        if isinstance(function.get("name"), str):
            piece["name"] = function["name"]
            self.calls[index]["name"] += function["name"]
        arguments = function.get("arguments")
        if arguments is not None:
            text = arguments if isinstance(arguments, str) else json.dumps(arguments)
            piece["arguments"] = text
            self.calls[index]["arguments"] += text
        elif "id" in out:
            piece["arguments"] = ""
        if piece:
            out["function"] = piece
        return out

    def _known(self, upstream: int | None) -> int | None:
        """The call a continuation delta belongs to: by its index while the server's indexes
        are distinct, else the latest call."""
        if upstream is not None and not self._collided:
            return self._by_upstream.get(upstream)
        return self._last
