"""The FastAPI application: ``create_app(settings)``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.routing import Route

from toolrun import __version__
from toolrun.config import Settings
from toolrun.gateway import routes as gateway_routes
from toolrun.mcp.http import McpEndpoint
from toolrun.platform import Platform
from toolrun.server import (
    routes_actions,
    routes_execute,
    routes_jobs,
    routes_search,
    routes_tools,
    ws,
)
from toolrun.server.errors import install_error_handlers

DESCRIPTION = """\
Register, find and call tools. Seed-002 tool management under `/tool` and `/function`,
invocation under `/tools/{id}/invoke` and `/jobs`, WebSocket execution at `/tool` and
`/function`. Every error answers `{"error": {"type", "message", "detail"}}`.
"""


async def isolation_report(settings: Settings) -> dict[str, Any]:
    """The sandbox probe's findings (see :mod:`toolrun.sandbox.probe`) and the tiers."""
    from starlette.concurrency import run_in_threadpool

    from toolrun.sandbox.probe import probe_with

    report = await run_in_threadpool(probe_with, settings.sandbox)
    tiers = {
        "inline": "trusted tools only, inside the API process",
        "process": "worker processes",
        "sandbox": report.mode,
    }
    return {"tiers": tiers, **report.to_dict()}


def create_app(settings: Settings | None = None, *, platform: Platform | None = None) -> FastAPI:
    """Build the app. The platform starts with the app's lifespan unless one is passed in
    already started (then the caller owns it)."""
    settings = settings or (platform.settings if platform else Settings())
    owned = platform is None
    the_platform = platform or Platform(settings)
    mcp_endpoint = McpEndpoint(the_platform)  # /mcp: MCP over Streamable HTTP

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if owned:
            await the_platform.start()
        try:
            yield
        finally:
            await mcp_endpoint.aclose()
            nl_router = getattr(app.state, "nl_router", None)
            if nl_router is not None:  # made on the first /execute; holds the LLM client
                app.state.nl_router = None
                await nl_router.aclose()
            if owned:
                await the_platform.close()

    app = FastAPI(
        title="toolrun",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.platform = the_platform
    install_error_handlers(app)
    app.include_router(routes_jobs.router)  # first: invocation is the hot path to match
    for family in ("tool", "function"):
        app.include_router(routes_tools.build_router(family))
    app.include_router(routes_search.router)
    app.include_router(ws.router)
    app.include_router(routes_execute.router)
    app.include_router(routes_actions.router)
    app.include_router(gateway_routes.build_router(the_platform))  # /v1: OpenAI-compatible
    # /mcp (an ASGI app, matched first: one cheap regex for the other routes)
    app.router.routes.insert(0, Route("/mcp", mcp_endpoint, include_in_schema=False))

    @app.get("/isolation", tags=["meta"], summary="Which isolation the sandbox tier has here")
    async def isolation() -> dict[str, Any]:
        return await isolation_report(settings)

    @app.get("/health", tags=["meta"], summary="Liveness and executor state")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "executor": the_platform.executor.stats()}

    return app
