"""The interface every runtime kind implements (run one call, return a Response), and the
safe ``{name}`` templating shared by the command and HTTP runtimes."""

from __future__ import annotations

import json
import string
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from toolrun.registry.tool import Tool
from toolrun.response import Response


class RuntimeRunner(ABC):
    """Executes tools of one runtime kind.

    ``run`` receives validated arguments (defaults merged) and must fold every failure of the
    tool itself (exception, exit status, HTTP error, timeout) into an ``isError`` Response.
    """

    async def start(self) -> None:  # noqa: B027 (optional hook)
        """Acquire long-lived resources (processes, clients)."""

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Release what :meth:`start` (or the first call) acquired."""

    async def check(self, tool: Tool) -> None:  # noqa: B027 (optional hook)
        """Raise :class:`~toolrun.errors.NotExecutable` if ``tool`` cannot run here at all
        (checked when a call is submitted, so the caller hears it at once)."""

    @abstractmethod
    async def run(self, tool: Tool, arguments: dict[str, Any], timeout_s: float) -> Response:
        """One call of ``tool`` with ``arguments``, stopped after ``timeout_s`` seconds."""

    async def run_with_start_hook(
        self,
        tool: Tool,
        arguments: dict[str, Any],
        timeout_s: float,
        on_start: Callable[[], Awaitable[None]] | None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> Response:
        """:meth:`run`, after awaiting ``on_start`` when the call really starts (here: at
        once; runners that wait for a resource first await it once they have it). If
        ``on_start`` raises, the call does not happen.

        ``on_progress`` receives the tool's progress reports (:mod:`toolrun.progress`), on the
        event loop, for runners that can carry them (Python tools); the others ignore it."""
        if on_start is not None:
            await on_start()
        return await self.run(tool, arguments, timeout_s)


class StartAwareRunner(RuntimeRunner):
    """A runner that knows when its call really starts (a free worker, a sandbox, a chain):
    it implements :meth:`run_with_start_hook`, and :meth:`run` is that call without hooks."""

    async def run(self, tool: Tool, arguments: dict[str, Any], timeout_s: float) -> Response:
        return await self.run_with_start_hook(tool, arguments, timeout_s, None)

    @abstractmethod
    async def run_with_start_hook(
        self,
        tool: Tool,
        arguments: dict[str, Any],
        timeout_s: float,
        on_start: Callable[[], Awaitable[None]] | None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> Response: ...


class TemplateError(ValueError):
    """A ``{name}`` template that cannot be filled; the message says why."""


def fill_template(
    template: str, arguments: Mapping[str, Any], render: Callable[[Any], str]
) -> tuple[str, set[str]]:
    """Substitute each ``{name}`` with ``render(arguments[name])``; ``{{``/``}}`` are braces.

    Deliberately not ``str.format``: only top-level argument names are allowed, so a template
    can never reach attributes or items (``{x.__class__}``, ``{x[0]}``), and no format specs.
    Returns the text and the names it used.
    """
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"invalid template {template!r}: {exc}") from None
    out: list[str] = []
    used: set[str] = set()
    for literal, name, spec, conversion in parts:
        out.append(literal)
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise TemplateError(
                f"template {template!r}: only plain {{name}} placeholders of arguments are allowed"
            )
        if name not in arguments:
            raise TemplateError(
                f"template {template!r} needs the argument {name!r}, which was not given"
            )
        out.append(render(arguments[name]))
        used.add(name)
    return "".join(out), used


def render_value(value: Any) -> str:
    """Strings as they are; anything else as JSON (``true``, ``null``, ``[1,2]``)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
