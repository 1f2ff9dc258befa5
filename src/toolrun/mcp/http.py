"""``/mcp``: the registry over MCP's Streamable HTTP, an ASGI app for the main server.

The SDK's session manager runs in a task group that outlives requests. ``toolrun serve``
starts its platform outside the app's lifespan, so the manager starts with the first request
(in a task of its own) and stops at :meth:`McpEndpoint.aclose` (the app's lifespan calls it;
otherwise the end of the event loop does). It is stateless and answers JSON (no per-client
session is kept, so any API replica can answer any request, and nothing is streamed: toolrun
sends no server-to-client messages). Bound to a loopback interface, it refuses requests whose
``Host`` or ``Origin`` is not loopback (DNS rebinding), as the SDK's own servers do.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.types import Receive, Scope, Send

from toolrun.errors import InfrastructureError
from toolrun.platform import Platform

if TYPE_CHECKING:
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from mcp.server.transport_security import TransportSecuritySettings

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def transport_security(host: str) -> TransportSecuritySettings | None:
    """DNS-rebinding protection for a loopback ``host`` (None: the server is exposed anyway)."""
    from mcp.server.transport_security import TransportSecuritySettings

    if host not in LOOPBACK:
        return None
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1", "localhost", "[::1]", "127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )


class McpEndpoint:
    """The ASGI app of ``/mcp`` over ``platform`` (tools matching ``filter``)."""

    def __init__(self, platform: Platform, *, filter: Mapping[str, Any] | None = None) -> None:
        self.platform = platform
        self.filter = filter
        self._manager: StreamableHTTPSessionManager | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        manager = self._manager or await self._start()
        if manager is None:
            await _unavailable(send)
            return
        await manager.handle_request(scope, receive, send)

    async def _start(self) -> StreamableHTTPSessionManager | None:
        if self._task is None:
            self._ready.clear()
            self._stop.clear()
            self._task = asyncio.create_task(self._run(), name="toolrun-mcp-http")
        await self._ready.wait()
        return self._manager

    async def _run(self) -> None:
        try:
            from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

            from toolrun.mcp.server import build_server

            manager = StreamableHTTPSessionManager(
                app=build_server(self.platform, filter=self.filter),
                json_response=True,
                stateless=True,
                security_settings=transport_security(self.platform.settings.host),
            )
            async with manager.run():
                self._manager = manager
                self._ready.set()
                await self._stop.wait()
        except Exception:
            log.exception("the MCP endpoint failed")
        finally:
            self._manager = None
            self._ready.set()

    async def aclose(self) -> None:
        """Stop the session manager (in-flight MCP requests are cancelled)."""
        task, self._task = self._task, None
        if task is not None:
            self._stop.set()
            await task


async def _unavailable(send: Send) -> None:
    body = json.dumps(InfrastructureError("the MCP endpoint is not running").to_dict()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
