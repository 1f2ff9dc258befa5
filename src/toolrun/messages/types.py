"""The messages of a conversation (seed 001's message classes), independent of any provider.

``SystemMessage`` and ``DeveloperMessage`` instruct the model, ``UserMessage`` speaks for the
user (text, or text and images), ``AssistantMessage`` is the model's turn with its
:class:`ToolCall` s, and ``ToolMessage`` answers one tool call. :mod:`.openai` and
:mod:`.anthropic` convert them to and from those APIs' shapes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class ToolCall:
    """One call the model asked for. ``raw_arguments`` keeps arguments that arrived as text
    that is not a JSON object (``arguments`` is then empty), so the call can still be
    answered with the error."""

    id: str
    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    raw_arguments: str | None = None


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ImagePart:
    """An image by ``url``, or inline as base64 ``data`` of ``media_type``. ``detail`` is
    OpenAI's (``low``, ``high``, ``auto``); Anthropic has no such field."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        if (self.url is None) == (self.data is None):
            raise ValueError("an ImagePart has a url or base64 data, not both or neither")
        if self.data is not None and not self.media_type:
            raise ValueError("an ImagePart with data needs its media_type (image/png, ...)")


ContentPart = TextPart | ImagePart


@dataclass(frozen=True)
class Message:
    """Base of the message classes; ``role`` is the OpenAI role."""

    role: ClassVar[str] = ""


@dataclass(frozen=True)
class SystemMessage(Message):
    """Instructions for the model (Anthropic: the ``system`` parameter)."""

    content: str
    name: str | None = None
    role: ClassVar[str] = "system"


@dataclass(frozen=True)
class DeveloperMessage(Message):
    """Instructions for newer OpenAI models (``developer``); in Anthropic's format it joins
    the ``system`` parameter."""

    content: str
    name: str | None = None
    role: ClassVar[str] = "developer"


@dataclass(frozen=True)
class UserMessage(Message):
    """What the user says: text, or a sequence of text and image parts."""

    content: str | Sequence[ContentPart]
    name: str | None = None
    role: ClassVar[str] = "user"

    def __post_init__(self) -> None:
        if not isinstance(self.content, str):
            object.__setattr__(self, "content", tuple(self.content))

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))


@dataclass(frozen=True)
class AssistantMessage(Message):
    """The model's turn: text, tool calls, or both."""

    content: str | None = None
    tool_calls: Sequence[ToolCall] = ()
    name: str | None = None
    role: ClassVar[str] = "assistant"

    def __post_init__(self) -> None:
        object.__setattr__(self, "tool_calls", tuple(self.tool_calls))


@dataclass(frozen=True)
class ToolMessage(Message):
    """The answer to the tool call ``tool_call_id``. ``is_error`` marks a failed call
    (Anthropic's ``is_error``; OpenAI has no such field)."""

    content: str
    tool_call_id: str
    is_error: bool = False
    role: ClassVar[str] = "tool"


AnyMessage = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage
