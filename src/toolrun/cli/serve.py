"""Running the server: one uvicorn server listening on the main port and the WebSocket port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys

import uvicorn

from toolrun.config import Settings
from toolrun.platform import Platform
from toolrun.server.app import create_app


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP,
    # and without it Nagle + delayed ACKs add ~40 ms to every keep-alive request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def protect_process_secrets() -> None:
    """Keep same-user tool code away from the server's settings (secrets, database URL).

    Settings are read already, so ``TOOLRUN_*`` leaves the environment before any worker (or
    the fork server) is started from it; and the process is made non-dumpable, which stops
    another process of the same (non-root) user from reading ``/proc/<pid>/environ`` or its
    memory. Neither stops code running as root: that takes the sandbox tier.
    """
    for key in [k for k in os.environ if k.upper().startswith("TOOLRUN_")]:
        del os.environ[key]
    if sys.platform == "linux":
        import ctypes

        pr_set_dumpable = 4
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_dumpable, 0, 0, 0, 0)


def configure_logging(level: str) -> None:
    """toolrun's own messages (the isolation report at start-up among them) beside uvicorn's."""
    logger = logging.getLogger("toolrun")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level.upper())


async def serve(settings: Settings, *, log_level: str = "info") -> None:
    """Serve until interrupted. Both ports answer every route (REST and WebSocket)."""
    configure_logging(log_level)
    protect_process_secrets()
    sockets = [bind(settings.host, settings.port)]
    if settings.ws_port and settings.ws_port != settings.port:
        sockets.append(bind(settings.host, settings.ws_port))
    if settings.demo and not settings.external_registry_url:
        # The demo server is its own external registry, so seed 002's
        # `curl -X POST .../tool/register/binary-increment-tool` works out of the box.
        local = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
        if ":" in local:
            local = f"[{local}]"  # an IPv6 literal in a URL
        settings = settings.model_copy(
            update={"external_registry_url": f"http://{local}:{settings.port}"}
        )
    platform = Platform(settings)
    await platform.start()
    try:
        app = create_app(settings, platform=platform)
        config = uvicorn.Config(app, lifespan="off", log_level=log_level, ws_max_size=1 << 20)
        server = uvicorn.Server(config)
        ports = ", ".join(str(s.getsockname()[1]) for s in sockets)
        logging.getLogger("toolrun").info(
            "toolrun listening on %s port(s) %s", settings.host, ports
        )
        await server.serve(sockets=sockets)
    finally:
        await platform.close()
        for sock in sockets:
            sock.close()


def run(settings: Settings, *, log_level: str = "info") -> None:
    asyncio.run(serve(settings, log_level=log_level))
