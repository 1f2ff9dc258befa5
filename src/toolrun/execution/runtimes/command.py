"""Scripts and binaries, started directly (never through a shell) in their own session.

``stdin_json``: the arguments go to stdin as one JSON object. ``argv``: each ``args`` template
becomes exactly one argv element, whatever characters the arguments hold. In both modes stdout
is the result: JSON when it parses as JSON, else text. A non-zero exit is an error carrying
the tail of stderr. At the timeout, on cancellation and after the command exits, its whole
process group is killed, so background children do not outlive the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from typing import Any, Literal, cast

from toolrun.errors import NotExecutable
from toolrun.execution.runtimes.base import (
    RuntimeRunner,
    TemplateError,
    fill_template,
    render_value,
)
from toolrun.registry.runtimes import CommandRuntime
from toolrun.registry.tool import Tool
from toolrun.response import Response

MAX_OUTPUT_BYTES = 1 << 20
ERROR_TAIL_CHARS = 2000
_PIPE_GRACE_S = 1.0
_EXIT_WAIT_S = 5.0


class _Capture:
    """At most ``limit`` bytes of one stream: its head (stdout) or its tail (stderr)."""

    def __init__(self, limit: int, keep: Literal["head", "tail"]) -> None:
        self.limit = limit
        self.keep = keep
        self.data = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.keep == "head":
            room = self.limit - len(self.data)
            if room > 0:
                self.data += chunk[:room]
        else:
            self.data += chunk
            if len(self.data) > self.limit:
                del self.data[: len(self.data) - self.limit]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.data)

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class _Collector(asyncio.SubprocessProtocol):
    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        self.stdout = _Capture(limit, "head")
        self.stderr = _Capture(limit, "tail")
        self.exited: asyncio.Future[None] = loop.create_future()
        self.finished: asyncio.Future[None] = loop.create_future()  # exited and pipes closed

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        (self.stdout if fd == 1 else self.stderr).add(raw)

    def process_exited(self) -> None:
        _settle(self.exited)

    def connection_lost(self, exc: Exception | None) -> None:
        _settle(self.finished)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _wait(future: asyncio.Future[None], timeout: float) -> bool:
    try:
        async with asyncio.timeout(timeout):
            await asyncio.shield(future)
    except TimeoutError:
        return False
    return True


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    """The API process's environment without toolrun's own settings (secrets), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("TOOLRUN_")}
    env.update(extra)
    return env


def describe_status(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


class CommandRunner(RuntimeRunner):
    """Runs ``command`` runtimes; see the module docstring."""

    def __init__(self, max_output_bytes: int = MAX_OUTPUT_BYTES) -> None:
        self.max_output_bytes = max_output_bytes

    async def run(self, tool: Tool, arguments: dict[str, Any], timeout_s: float) -> Response:
        runtime = tool.runtime
        if not isinstance(runtime, CommandRuntime):
            raise NotExecutable(f"tool {tool.id!r} does not have a command runtime")
        try:
            argv, stdin = build_invocation(runtime, arguments)
        except TemplateError as exc:
            return Response.error(f"cannot build the command line: {exc}")

        loop = asyncio.get_running_loop()
        try:
            transport, collector = await loop.subprocess_exec(
                lambda: _Collector(self.max_output_bytes, loop),
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=runtime.cwd,
                env=child_environment(runtime.env),
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            if runtime.cwd is not None and exc.filename == runtime.cwd:
                return Response.error(f"working directory not found: {runtime.cwd}")
            return Response.error(f"command not found: {argv[0]}")
        except PermissionError:
            return Response.error(f"command is not executable: {argv[0]}")
        except (OSError, ValueError) as exc:  # ValueError: a NUL character in an argument
            return Response.error(f"cannot start {argv[0]}: {exc}")

        pid = transport.get_pid()
        timed_out = False
        try:
            if stdin is not None:
                pipe = cast(asyncio.WriteTransport, transport.get_pipe_transport(0))
                pipe.write(stdin)
                pipe.close()  # flushes, then closes: the command sees end of input
            deadline = asyncio.timeout(timeout_s)
            try:
                async with deadline:
                    await asyncio.shield(collector.exited)
            except TimeoutError:
                if not deadline.expired():
                    raise
                timed_out = True
            _kill_group(pid)  # leftovers such as `sleep 100 &` would hold our pipes open
            # A child that left the group (setsid) may still hold a pipe: stop reading soon.
            await _wait(collector.finished, _PIPE_GRACE_S)
        finally:
            _kill_group(pid)
            if not collector.exited.done():
                await _wait(collector.exited, _EXIT_WAIT_S)
            transport.close()

        if timed_out:
            return Response.timed_out(timeout_s)
        returncode = transport.get_returncode()
        if returncode:
            return self._failure(argv[0], returncode, collector)
        return self._result(collector.stdout)

    def _failure(self, program: str, returncode: int, collector: _Collector) -> Response:
        message = f"command {program} {describe_status(returncode)}"
        name, capture = "stderr", collector.stderr
        if not capture.total:
            name, capture = "stdout", collector.stdout
        text = capture.text().strip()
        if text:
            cut = capture.truncated or len(text) > ERROR_TAIL_CHARS
            message += f"\n{name}: {'...' if cut else ''}{text[-ERROR_TAIL_CHARS:]}"
        return Response.error(message)

    def _result(self, stdout: _Capture) -> Response:
        return stdout_result(stdout.text(), stdout.total if stdout.truncated else None)


def build_invocation(
    runtime: CommandRuntime, arguments: dict[str, Any]
) -> tuple[list[str], bytes | None]:
    """argv and stdin of one call (raises :class:`TemplateError` for a bad ``args`` template)."""
    argv = list(runtime.command)
    if runtime.mode == "argv":
        argv += [fill_template(t, arguments, render_value)[0] for t in runtime.args]
        return argv, None
    return argv, json.dumps(arguments, ensure_ascii=False).encode()


def stdout_result(text: str, truncated_total: int | None = None) -> Response:
    """A command's stdout as its result: JSON when it parses as JSON, else text.
    ``truncated_total``: the size of the whole output when only ``text`` was kept."""
    if truncated_total is not None:
        shown = len(text.encode())
        note = f"[stdout truncated: {truncated_total} bytes, showing the first {shown}]"
        return Response.from_value(f"{text}\n{note}")
    if not text.strip():
        return Response.from_value(None)
    try:
        return Response.from_value(json.loads(text))
    except ValueError:
        return Response.from_value(text.rstrip("\n"))
