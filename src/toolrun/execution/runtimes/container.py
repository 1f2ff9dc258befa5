"""``container`` tools: an image run with docker or podman, arguments on stdin as JSON.

The engine is found once (``TOOLRUN_SANDBOX__CONTAINER_ENGINE``, else docker or podman on
PATH) and asked for its server version, so a client without a running engine is reported as
such. Containers run with no network, a read-only root, all capabilities dropped,
no-new-privileges, no image pulls (operators pull images), and the sandbox tier's memory
(swap included), pids and CPU limits; each has a name, so a
call that times out is killed through the engine (killing the client alone would leave the
container running).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import time
import uuid
from typing import Any

from toolrun.config import Settings
from toolrun.errors import NotExecutable
from toolrun.execution.runtimes.base import RuntimeRunner
from toolrun.execution.runtimes.command import CommandRunner
from toolrun.registry.runtimes import CommandRuntime, ContainerRuntime
from toolrun.registry.tool import Tool
from toolrun.response import Response

ENGINES = ("docker", "podman")
_PROBE_TIMEOUT_S = 10.0
RECHECK_S = 30.0


class ContainerRunner(RuntimeRunner):
    """Runs ``container`` runtimes; see the module docstring."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.commands = CommandRunner(settings.sandbox.output_bytes)
        self._engines: dict[str, tuple[str | None, float]] = {}  # wanted -> (path, when)
        self._problems: dict[str, str] = {}

    async def engine(self, wanted: str) -> str:
        """The path of a working engine, or :class:`NotExecutable` saying why there is none."""
        cached = self._engines.get(wanted)
        if cached is None or (cached[0] is None and time.monotonic() - cached[1] > RECHECK_S):
            cached = (await self._find(wanted), time.monotonic())  # a missing engine may start
            self._engines[wanted] = cached
        found = cached[0]
        if found is None:
            raise NotExecutable(self._problems[wanted])
        return found

    async def _find(self, wanted: str) -> str | None:
        configured = self.settings.sandbox.container_engine
        names = [configured] if configured else list(ENGINES) if wanted == "auto" else [wanted]
        problems = []
        for name in names:
            path = shutil.which(name)
            if path is None:
                problems.append(f"{name} is not installed")
                continue
            error = await _engine_error(path)
            if error is None:
                return path
            problems.append(f"{name} is installed but its engine does not answer ({error})")
        self._problems[wanted] = (
            "no container engine is available on this server for container tools: "
            + "; ".join(problems)
        )
        return None

    async def check(self, tool: Tool) -> None:
        if isinstance(tool.runtime, ContainerRuntime):
            await self.engine(tool.runtime.engine)

    async def run(self, tool: Tool, arguments: dict[str, Any], timeout_s: float) -> Response:
        runtime = tool.runtime
        if not isinstance(runtime, ContainerRuntime):
            raise NotExecutable(f"tool {tool.id!r} does not have a container runtime")
        engine = await self.engine(runtime.engine)
        name = f"toolrun-{uuid.uuid4().hex[:16]}"
        argv = [engine, *self.run_options(tool, name), runtime.image, *runtime.command]
        as_command = tool.with_changes(runtime=CommandRuntime(command=argv, mode="stdin_json"))
        try:
            response = await self.commands.run(as_command, arguments, timeout_s)
        finally:
            await _remove(engine, name)
        return response

    def run_options(self, tool: Tool, name: str) -> list[str]:
        config = self.settings.sandbox
        memory = min(tool.policy.memory_mb or config.memory_mb, config.max_memory_mb)
        # --pull never: a call must not make this server fetch images from anywhere a
        # client names (disk, and requests to internal registries); operators pull.
        options = ["run", "--rm", "-i", "--pull", "never", "--name", name, "--network", "none"]
        options += ["--read-only", "--tmpfs", f"/tmp:size={config.scratch_mb}m"]
        options += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
        options += ["--memory", f"{memory}m", "--memory-swap", f"{memory}m"]
        options += ["--pids-limit", str(config.pids)]
        cpu_s = tool.policy.cpu_s or config.cpu_s
        if cpu_s:
            options += ["--ulimit", f"cpu={math.ceil(cpu_s)}"]
        options += ["--user", "65534:65534"]
        return options


async def _engine_error(path: str) -> str | None:
    try:
        process = await asyncio.create_subprocess_exec(
            path,
            "version",
            "--format",
            "{{.Server.Version}}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        return str(exc)
    try:
        out, err = await asyncio.wait_for(process.communicate(), _PROBE_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        return f"no answer within {_PROBE_TIMEOUT_S:g} s"
    if process.returncode == 0 and out.strip():
        return None
    text = (err or out).decode(errors="replace").strip().splitlines()
    return text[-1] if text else f"exit status {process.returncode}"


async def _remove(engine: str, name: str) -> None:
    """Kill and remove the container if it outlived its client (timeout, cancellation)."""
    with contextlib.suppress(OSError):
        process = await asyncio.create_subprocess_exec(
            engine,
            "rm",
            "--force",
            name,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), _PROBE_TIMEOUT_S)
