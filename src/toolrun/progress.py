"""Progress reports from inside a tool.

::

    from toolrun import progress

    def crunch(files: list[str]) -> int:
        for done, name in enumerate(files, 1):
            ...
            progress.report(done / len(files), f"read {name}", files_done=done)
        return len(files)

:func:`report` sends ``{"fraction", "message", "data"}`` to the job the call belongs to: the
job keeps the last one (``GET /jobs/{uuid}`` shows it) and streams each to WebSocket and SSE
clients (``/jobs/{uuid}/events``, and the seed WebSocket between its two messages). Outside a
job (a test, a script) it checks its arguments and does nothing. It never blocks on a slow
client: reports are best-effort, a flood of them may be thinned on the way.

Where the tool runs decides how a report travels: in a worker process as a JSON frame on the
worker's socket (the parent validates it again, see :func:`parse`); in the API process (a
trusted, inline tool) straight to the executor. This module imports only the standard
library: every worker process imports it.
"""

from __future__ import annotations

import contextvars
import json
import math
from collections.abc import Callable
from typing import Any

MAX_MESSAGE_CHARS = 1000
MAX_EVENT_BYTES = 16 * 1024

Sink = Callable[[dict[str, Any]], None]

# A call running in this process's event loop or its threads (inline tools) sets the context
# variable; a worker process, which runs one call at a time, sets the process-wide sink.
_call_sink: contextvars.ContextVar[Sink | None] = contextvars.ContextVar(
    "toolrun_progress_sink", default=None
)
_process_sink: Sink | None = None


def report(fraction: float | None = None, message: str | None = None, **data: Any) -> None:
    """Report how far the running tool has got.

    ``fraction``: done so far, from 0 to 1 (None: unknown); ``message``: a short line for
    people (at most 1,000 characters); ``data``: any JSON values (at most 16 KiB in all).
    Raises ``ValueError``/``TypeError`` for values outside those bounds, inside a job or not,
    so a mistake shows in the tool's own tests."""
    event = make_event(fraction, message, data)
    sink = _call_sink.get() or _process_sink
    if sink is not None:
        sink(event)


def make_event(fraction: Any, message: Any, data: Any) -> dict[str, Any]:
    """A checked progress event ``{"fraction", "message", "data"}``."""
    if fraction is not None:
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise TypeError(f"fraction must be a number from 0 to 1, got {type(fraction).__name__}")
        if not math.isfinite(fraction) or not 0 <= fraction <= 1:
            raise ValueError(f"fraction must be from 0 to 1, got {fraction!r}")
        fraction = float(fraction)
    if message is not None:
        if not isinstance(message, str):
            raise TypeError(f"message must be a string, got {type(message).__name__}")
        if len(message) > MAX_MESSAGE_CHARS:
            raise ValueError(f"message is longer than {MAX_MESSAGE_CHARS} characters")
    if not isinstance(data, dict):
        raise TypeError(f"data must be a dict, got {type(data).__name__}")
    event = {"fraction": fraction, "message": message, "data": data}
    try:
        size = len(json.dumps(event, ensure_ascii=False, allow_nan=False).encode())
    except (TypeError, ValueError) as exc:
        raise TypeError(f"progress data must be JSON values: {exc}") from None
    if size > MAX_EVENT_BYTES:
        raise ValueError(f"a progress report is {size} bytes; the limit is {MAX_EVENT_BYTES}")
    return event


def parse(value: Any) -> dict[str, Any] | None:
    """The progress event in ``value`` (as a worker or sandbox sent it), or None if it is not
    a valid one: the parent trusts nothing that comes from tool code. Keys other than
    ``fraction``, ``message`` and ``data`` are taken as data (a flat ``{"fraction", **data}``
    is accepted too)."""
    if not isinstance(value, dict):
        return None
    data = value.get("data", {})
    extra = {k: v for k, v in value.items() if k not in ("fraction", "message", "data")}
    if extra:
        if not isinstance(data, dict):
            return None
        data = {**data, **extra}
    try:
        return make_event(value.get("fraction"), value.get("message"), data)
    except (TypeError, ValueError):
        return None


def set_process_sink(sink: Sink | None) -> None:
    """Where reports of this process go (worker processes set it around each call)."""
    global _process_sink
    _process_sink = sink


def set_call_sink(sink: Sink | None) -> contextvars.Token[Sink | None]:
    """Where reports of the current context go (inline calls set it in their own context)."""
    return _call_sink.set(sink)
