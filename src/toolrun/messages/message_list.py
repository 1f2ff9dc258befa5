"""A conversation, and extensions that shape it each time it is serialized (seed 001).

An extension has one hook, ``extend(messages)``, called on a copy of the list by
:meth:`MessageList.rendered` (so by every ``to_*`` method); the list itself never changes.
:class:`RegistryExtension` is the built-in one: it prepends a developer message naming the
registry's namespaces and their descriptions. ``add_extension(registry)`` wraps a
:class:`~toolrun.registry.registry.Registry` in it, as seed 001's registry is an extension.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from toolrun.messages import anthropic, openai
from toolrun.messages.types import DeveloperMessage, Message


@runtime_checkable
class MessageListExtension(Protocol):
    def extend(self, messages: MessageList) -> None:
        """Change ``messages`` (a copy, about to be serialized) in place."""


class NamespacedRegistry(Protocol):
    """What :class:`RegistryExtension` needs of a registry."""

    def __len__(self) -> int: ...

    def namespace_overview(self) -> str: ...


class RegistryExtension:
    """Prepends ``DeveloperMessage(registry.namespace_overview())`` when the registry has
    tools, so the model knows the namespaces its function names start with."""

    def __init__(self, registry: NamespacedRegistry) -> None:
        self.registry = registry

    def extend(self, messages: MessageList) -> None:
        if len(self.registry):
            messages.prepend_messages([DeveloperMessage(self.registry.namespace_overview())])


class MessageList(Sequence[Message]):
    """Messages in order, plus the extensions applied when serializing them."""

    def __init__(
        self,
        messages: Iterable[Message] = (),
        extensions: Iterable[MessageListExtension | NamespacedRegistry] = (),
    ) -> None:
        self.messages: list[Message] = list(messages)
        self.extensions: list[MessageListExtension] = []
        self.add_extensions(extensions)

    # -- building ---------------------------------------------------------------------------

    def add_message(self, message: Message) -> MessageList:
        self.messages.append(message)
        return self

    add = add_message

    def add_messages(self, messages: Iterable[Message]) -> MessageList:
        self.messages.extend(messages)
        return self

    def prepend_messages(self, messages: Iterable[Message]) -> MessageList:
        self.messages[:0] = list(messages)
        return self

    def add_extension(self, extension: MessageListExtension | NamespacedRegistry) -> MessageList:
        """Add an extension; a registry is wrapped in :class:`RegistryExtension`."""
        if isinstance(extension, MessageListExtension):
            self.extensions.append(extension)
        elif callable(getattr(extension, "namespace_overview", None)):
            self.extensions.append(RegistryExtension(extension))
        else:
            raise TypeError(
                f"{type(extension).__name__} is neither an extension (extend(messages)) "
                "nor a registry"
            )
        return self

    def add_extensions(
        self, extensions: Iterable[MessageListExtension | NamespacedRegistry]
    ) -> MessageList:
        for extension in extensions:
            self.add_extension(extension)
        return self

    # -- reading ----------------------------------------------------------------------------

    def __getitem__(self, index: Any) -> Any:
        return self.messages[index]

    def __len__(self) -> int:
        return len(self.messages)

    def __iter__(self) -> Iterator[Message]:
        return iter(self.messages)

    def __repr__(self) -> str:
        return f"MessageList({self.messages!r})"

    def count(self, value: Any = None) -> int:
        """Seed 001's ``count()``: how many messages (with an argument: Sequence.count)."""
        return len(self.messages) if value is None else self.messages.count(value)

    def get_messages(self) -> list[Message]:
        return list(self.messages)

    # -- serializing ------------------------------------------------------------------------

    def rendered(self) -> MessageList:
        """A copy with every extension applied (in the order they were added)."""
        clone = copy.copy(self)
        clone.messages = list(self.messages)
        clone.extensions = []
        for extension in self.extensions:
            extension.extend(clone)
        return clone

    def to_openai(self) -> list[dict[str, Any]]:
        """OpenAI chat ``messages`` (see :mod:`toolrun.messages.openai`)."""
        return openai.to_openai(self.rendered())

    to_array = to_openai  # seed 001's toArray()

    def to_anthropic(self) -> tuple[str | None, list[dict[str, Any]]]:
        """Anthropic's ``(system, messages)`` (see :mod:`toolrun.messages.anthropic`)."""
        return anthropic.to_anthropic(self.rendered())

    @classmethod
    def from_openai(cls, messages: Iterable[Mapping[str, Any]]) -> MessageList:
        return cls(openai.from_openai(messages))

    @classmethod
    def from_anthropic(
        cls,
        messages: Iterable[Mapping[str, Any]],
        system: str | Sequence[Mapping[str, Any]] | None = None,
    ) -> MessageList:
        return cls(anthropic.from_anthropic(messages, system))
