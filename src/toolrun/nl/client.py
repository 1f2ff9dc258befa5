"""What generated code calls for a tool that is not a plain Python function: the server's
``POST /tools/{id}/invoke``, at ``TOOLRUN_URL`` (default ``http://127.0.0.1:8000``)."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import httpx


def call(tool_id: str, arguments: dict[str, Any] | None = None, *, url: str | None = None) -> Any:
    """Invoke ``tool_id`` and return its structured result (or its text content)."""
    base = (url or os.environ.get("TOOLRUN_URL") or "http://127.0.0.1:8000").rstrip("/")
    reply = httpx.post(
        f"{base}/tools/{quote(tool_id, safe=':')}/invoke", json=arguments or {}, timeout=60
    )
    reply.raise_for_status()
    body = reply.json()
    if body.get("isError"):
        raise RuntimeError(str(body.get("content")))
    return body.get("structuredContent", body.get("content"))
