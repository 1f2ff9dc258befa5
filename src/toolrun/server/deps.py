"""Access to the running platform from request handlers."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from toolrun.platform import Platform


def get_platform(conn: HTTPConnection) -> Platform:
    platform: Platform = conn.app.state.platform
    return platform
