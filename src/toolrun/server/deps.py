"""Access to the running platform from request handlers."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from toolrun.platform import Platform


async def get_platform(conn: HTTPConnection) -> Platform:
    """Async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread."""
    platform: Platform = conn.app.state.platform
    return platform
