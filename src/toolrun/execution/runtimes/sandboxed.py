"""The sandbox tier: ``code`` tools, and ``command`` tools whose isolation is ``sandbox``.

At :meth:`SandboxRunner.start` the machine is probed once (:func:`toolrun.sandbox.probe.probe`)
and the result logged. When the sandbox is unavailable, sandboxed tools are refused with the
reason (``NotExecutable``, 422), never run with less isolation, unless the operator set
``TOOLRUN_SANDBOX__FALLBACK=unsandboxed``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import stat
from collections.abc import Awaitable, Callable
from typing import Any

from toolrun import progress
from toolrun.config import SandboxSettings, Settings
from toolrun.errors import NotExecutable
from toolrun.execution.runtimes.base import StartAwareRunner, TemplateError
from toolrun.execution.runtimes.command import (
    ERROR_TAIL_CHARS,
    build_invocation,
    stdout_result,
)
from toolrun.registry.runtimes import CodeRuntime, CommandRuntime
from toolrun.registry.tool import Tool
from toolrun.response import Response
from toolrun.sandbox.launcher import (
    Network,
    Sandbox,
    SandboxLimits,
    SandboxOutcome,
    SandboxRequest,
)
from toolrun.sandbox.probe import IsolationReport, probe_with

log = logging.getLogger(__name__)
MAX_PROGRAM_BYTES = 64 << 20
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONIOENCODING": "utf-8",
    "PYTHONDONTWRITEBYTECODE": "1",
}


class SandboxRunner(StartAwareRunner):
    """Runs tools in the sandbox tier; see the module docstring."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._report: IsolationReport | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self.report()

    async def report(self) -> IsolationReport:
        """The probe's findings (probed on first use, then kept)."""
        async with self._lock:
            if self._report is None:
                self._report = await asyncio.to_thread(probe_with, self.settings.sandbox)
                level = logging.INFO if not self._report.weaknesses else logging.WARNING
                log.log(level, "%s", self._report.summary())
            return self._report

    async def sandbox(self, tool: Tool) -> Sandbox:
        report = await self.report()
        if not report.available or report.host is None:
            raise NotExecutable(
                f"tool {tool.id!r} runs in the sandbox tier, which is unavailable on this "
                f"server: {report.reason}. (An operator may opt in to a weaker tier with "
                "TOOLRUN_SANDBOX__FALLBACK=unsandboxed.)"
            )
        return Sandbox(report.host)

    async def check(self, tool: Tool) -> None:
        await self.sandbox(tool)
        self.environment_for(tool, {})  # every secret it names is configured

    def limits_for(self, tool: Tool, timeout_s: float) -> SandboxLimits:
        policy = tool.policy
        return sandbox_limits(
            self.settings.sandbox,
            timeout_s,
            cpu_s=policy.cpu_s,
            memory_mb=policy.memory_mb,
            output_bytes=policy.output_bytes,
            network=policy.network,
        )

    def environment_for(self, tool: Tool, extra: dict[str, str]) -> dict[str, str]:
        """A fixed base, the tool's own variables, the allow-listed ones from this process's
        environment, and the secrets it names (under their own names)."""
        env = dict(BASE_ENV)
        env.update(extra)
        for name in tool.policy.env:
            if name.upper().startswith("TOOLRUN_"):
                continue  # the service's own settings (secrets among them) never pass
            if name in os.environ:
                env[name] = os.environ[name]
        for name in tool.policy.secrets:
            secret = self.settings.secrets.get(name) or self.settings.secrets.get(name.lower())
            if secret is None:
                raise NotExecutable(
                    f"tool {tool.id!r} needs the secret {name!r}, which is not configured "
                    f"(TOOLRUN_SECRETS__{name.upper()})"
                )
            env[name] = secret.get_secret_value()
        return env

    async def run_with_start_hook(
        self,
        tool: Tool,
        arguments: dict[str, Any],
        timeout_s: float,
        on_start: Callable[[], Awaitable[None]] | None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> Response:
        sandbox = await self.sandbox(tool)
        if on_start is not None:
            await on_start()  # the call has started, whether it gets past the checks below
        request = await self.request_for(tool, arguments, timeout_s)
        if isinstance(request, Response):
            return request
        if on_progress is not None:
            request.on_progress = _checked(on_progress)
        outcome = await sandbox.run(request)
        if request.mode == "code":
            return code_response(outcome, request.limits.wall_s)
        return command_response(request.argv[0], outcome, request.limits.wall_s)

    async def request_for(
        self, tool: Tool, arguments: dict[str, Any], timeout_s: float
    ) -> SandboxRequest | Response:
        limits = self.limits_for(tool, timeout_s)
        runtime = tool.runtime
        if isinstance(runtime, CodeRuntime):
            return SandboxRequest(
                mode="code",
                limits=limits,
                source=runtime.source,
                entrypoint=runtime.entrypoint,
                arguments=arguments,
                env=self.environment_for(tool, {}),
            )
        if isinstance(runtime, CommandRuntime):
            try:
                argv, stdin = build_invocation(runtime, arguments)
            except TemplateError as exc:
                return Response.error(f"cannot build the command line: {exc}")
            # A bare name is looked up as the sandbox sees it (its PATH, under /usr), then on
            # this server's PATH (and copied in): a pyenv or venv shim would not run inside.
            found = shutil.which(argv[0], path=BASE_ENV["PATH"]) or shutil.which(argv[0])
            if found is None:
                return Response.error(f"command not found: {argv[0]}")
            program = os.path.realpath(found)
            copied: tuple[str, bytes] | None = None
            if not _under_usr(program):  # the sandbox has /usr: programs there run in place
                # Anything else is copied in (read-only): no host directory is bound into the
                # sandbox. Only what any user of this machine could read and run is copied.
                content = await asyncio.to_thread(read_program, program)
                if isinstance(content, str):
                    return Response.error(f"command {argv[0]}: {content}")
                copied = (os.path.basename(program), content)
            return SandboxRequest(
                mode="exec",
                limits=limits,
                argv=[program, *argv[1:]],
                stdin=stdin,
                env=self.environment_for(tool, dict(runtime.env)),
                program=copied,
            )
        kind = runtime.kind if runtime is not None else None
        raise NotExecutable(
            f"tool {tool.id!r}: a {kind} runtime cannot run in the sandbox tier "
            "(python tools import code from the server's environment, which the sandbox does "
            "not mount; give the tool a code runtime, or isolation 'process')"
        )


def sandbox_limits(
    config: SandboxSettings,
    timeout_s: float,
    *,
    cpu_s: float | None = None,
    memory_mb: int | None = None,
    output_bytes: int | None = None,
    network: Network = "none",
) -> SandboxLimits:
    """One run's limits: what was asked (a tool's policy), else the server's defaults, never
    above the server's maxima; CPU never above the wall clock."""
    cpu = cpu_s or config.cpu_s or timeout_s
    return SandboxLimits(
        wall_s=timeout_s,
        cpu_s=min(cpu, timeout_s),
        memory_mb=min(memory_mb or config.memory_mb, config.max_memory_mb),
        pids=config.pids,
        scratch_mb=config.scratch_mb,
        file_mb=config.file_mb,
        nofile=config.nofile,
        output_bytes=min(output_bytes or config.output_bytes, config.max_output_bytes),
        result_bytes=config.result_bytes,
        network=network,
    )


def _checked(sink: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """Pass on only valid progress events: the sandboxed code may send anything."""

    def forward(raw: dict[str, Any]) -> None:
        event = progress.parse(raw)
        if event is not None:
            sink(event)

    return forward


def read_program(path: str) -> bytes | str:
    """The bytes of a program to copy into the sandbox, or why it may not be: it must be a
    regular file (no symlink swapped in, no FIFO), readable and executable by any user (the
    sandbox must not run what the service's own permissions protect), and not too big."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return f"cannot open {path}: {exc.strerror}"
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return f"{path} is not a regular file"
        others = stat.S_IROTH | stat.S_IXOTH
        if info.st_mode & others != others:
            return (
                f"{path} is not readable and executable by every user; the sandbox only runs "
                "programs any user could (chmod o+rx, or install it under /usr)"
            )
        content = handle.read(MAX_PROGRAM_BYTES + 1)
    if len(content) > MAX_PROGRAM_BYTES:
        return f"{path} is larger than {MAX_PROGRAM_BYTES} bytes (install it under /usr)"
    return content


def _under_usr(path: str) -> bool:
    return path.startswith("/usr/")


def _stderr_tail(outcome: SandboxOutcome) -> str:
    text = outcome.stderr.decode(errors="replace").strip()
    if not text:
        return ""
    cut = len(text) > ERROR_TAIL_CHARS
    return f"\nstderr: {'...' if cut else ''}{text[-ERROR_TAIL_CHARS:]}"


def _stopped(outcome: SandboxOutcome, what: str, wall_s: float) -> Response | None:
    if outcome.status == "timeout":
        return Response.timed_out(wall_s)
    if outcome.status == "output_limit":
        return Response.error(f"{what} was stopped at {outcome.reason}")
    if outcome.status == "killed":
        return Response.error(f"{what} was {outcome.reason}{_stderr_tail(outcome)}")
    return None


def code_response(outcome: SandboxOutcome, wall_s: float) -> Response:
    """A code tool's outcome as a Response: its return value, or an error saying why not."""
    stopped = _stopped(outcome, "the sandboxed code", wall_s)
    if stopped is not None:
        return stopped
    if outcome.status == "ok" and outcome.has_result:
        return Response.from_value(outcome.result)
    if outcome.error is not None:
        message = f"{outcome.error.get('type', 'Error')}: {outcome.error.get('message', '')}"
        trace = str(outcome.error.get("trace", "")).strip()
        return Response.error(f"{message}\n{trace}" if trace else message)
    return Response.error(f"the sandboxed code {outcome.reason}{_stderr_tail(outcome)}")


def command_response(program: str, outcome: SandboxOutcome, wall_s: float) -> Response:
    """A sandboxed command's outcome, read as the command runtime reads it."""
    stopped = _stopped(outcome, f"command {program}", wall_s)
    if stopped is not None:
        return stopped
    if outcome.status == "ok":
        text = outcome.stdout.decode("utf-8", errors="replace")
        return stdout_result(text)
    return Response.error(f"command {program} {outcome.reason}{_stderr_tail(outcome)}")
