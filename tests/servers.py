"""Start real toolrun servers (``toolrun serve`` in a subprocess) on loopback for e2e tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    port: int
    ws_port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"


@contextmanager
def toolrun_server(
    data_dir: Path,
    *,
    demo: bool = True,
    env: dict[str, str] | None = None,
    port: int | None = None,
    ws_port: int | None = None,
    startup_timeout_s: float = 30.0,
) -> Iterator[RunningServer]:
    """``toolrun serve`` as a user runs it; stopped with SIGINT (then SIGKILL) afterwards."""
    port = port or free_port()
    ws_port = ws_port or free_port()
    log = data_dir.parent / f"server-{port}.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "toolrun.cli.main", "serve", "--port", str(port)]
    args += ["--ws-port", str(ws_port), "--data-dir", str(data_dir), "--log-level", "warning"]
    if demo:
        args.append("--demo")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLRUN_")}
    if "TOOLRUN_REMOTE_PYTHON_MODULES" in os.environ:  # the test tool modules (conftest)
        full_env["TOOLRUN_REMOTE_PYTHON_MODULES"] = os.environ["TOOLRUN_REMOTE_PYTHON_MODULES"]
    full_env.update(env or {})
    with log.open("wb") as sink:
        process = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, env=full_env)
    server = RunningServer(port, ws_port, process, log)
    try:
        _wait_healthy(server, startup_timeout_s)
        yield server
    finally:
        stop(server)


def _wait_healthy(server: RunningServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log.read_text()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server not healthy after {timeout_s}s:\n{server.log.read_text()}")


def stop(server: RunningServer) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
