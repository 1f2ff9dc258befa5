"""Reading ``/jobs/{uuid}/events``: WebSocket URLs, Server-Sent Events, error messages."""

from __future__ import annotations

import json
from typing import Any

import httpx

from toolrun.client.errors import from_body, status_of
from toolrun.client.models import JobEvent


def ws_url(base: httpx.URL, path: str) -> str:
    """``path`` on the client's server, as a ``ws://`` (``wss://``) URL."""
    scheme = "wss" if base.scheme == "https" else "ws"
    prefix = base.raw_path.decode("ascii").split("?")[0].rstrip("/")
    return f"{scheme}://{base.netloc.decode('ascii')}{prefix}{path}"


def decode(message: str | bytes | dict[str, Any]) -> JobEvent:
    """One event; an ``{"event": "error", "error": {...}}`` message raises its typed error."""
    data = json.loads(message) if isinstance(message, str | bytes) else message
    if data.get("event") == "error":
        error = data.get("error") or {}
        raise from_body(status_of(str(error.get("type", ""))), data)
    return JobEvent.from_dict(data)


class SSEDecoder:
    """Feed it the lines of a ``text/event-stream``; it returns each event's JSON data."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> dict[str, Any] | None:
        if line.startswith("data:"):
            value = line[5:]
            self._data.append(value[1:] if value.startswith(" ") else value)
            return None
        if line or not self._data:  # event:, id:, comments; or a blank line with no data
            return None
        text, self._data = "\n".join(self._data), []
        data: dict[str, Any] = json.loads(text)
        return data
