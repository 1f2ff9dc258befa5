"""``toolrun gateway``: the ``/v1`` routes (and ``/health``) alone, with the embedded store and
executor (server-side tools and the request log need them). ``toolrun serve`` has the same
routes beside the rest of the API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI

from toolrun import __version__
from toolrun.config import Settings
from toolrun.gateway.routes import gateway_router
from toolrun.gateway.service import Gateway
from toolrun.platform import Platform


def create_gateway_app(settings: Settings, *, api_keys: Iterable[str] = ()) -> FastAPI:
    """The gateway's app; its lifespan starts and closes the platform."""
    platform = Platform(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await platform.start()
        try:
            yield
        finally:
            await platform.close()

    app = FastAPI(title="toolrun gateway", version=__version__, lifespan=lifespan)
    app.state.platform = platform
    app.state.gateway = Gateway(settings, platform, api_keys=api_keys)
    app.include_router(gateway_router(app.state.gateway))

    @app.get("/health", tags=["meta"], summary="Liveness")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    return app


async def serve(
    settings: Settings, *, api_keys: Iterable[str] = (), log_level: str = "info"
) -> None:
    """Serve the gateway on ``settings.host:settings.port`` until interrupted."""
    from toolrun.cli.serve import bind, configure_logging, protect_process_secrets

    configure_logging(log_level)
    protect_process_secrets()
    sock = bind(settings.host, settings.port)
    try:
        app = create_gateway_app(settings, api_keys=api_keys)
        server = uvicorn.Server(uvicorn.Config(app, log_level=log_level))
        models = app.state.gateway.models()
        names = ", ".join(m["id"] for m in models) or "none (set TOOLRUN_LLM_BASE_URL)"
        logging.getLogger("toolrun").info(
            "toolrun gateway on http://%s:%d/v1, models: %s", settings.host, settings.port, names
        )
        await server.serve(sockets=[sock])
    finally:
        sock.close()


def run(settings: Settings, *, api_keys: Iterable[str] = (), log_level: str = "info") -> None:
    asyncio.run(serve(settings, api_keys=api_keys, log_level=log_level))
