"""Runs one piece of untrusted code in a bubblewrap sandbox and reports what happened.

Layers, outermost first (each is enough for some attacks, none for all):

* an unprivileged uid: when the service runs as root, bwrap is started as a dedicated uid
  (a root-run ``bwrap --uid`` would keep kernel uid 0);
* bubblewrap: new user (further user namespaces disabled), pid, network, mount, ipc, uts and
  cgroup namespaces; a read-only root holding only ``/usr`` (and the interpreter's prefix when
  it lives elsewhere), a fresh ``/proc`` and minimal ``/dev``, size-limited tmpfs at ``/tmp``
  and ``/dev/shm``; ``--die-with-parent``, ``--new-session``, a cleared environment;
* a seccomp filter (:mod:`.seccomp`), loaded by bwrap just before the interpreter starts;
* inside, :mod:`.bootstrap` lowers rlimits (CPU, address space as a backstop, file size, open
  files, processes, no core files) and applies Landlock where the kernel has it;
* a memory + pids cgroup per run (:mod:`.cgroups`) when one is writable, joined before the
  code starts (``--block-fd``), killed and removed afterwards.

The result comes back over a private pipe as size-capped JSON lines, never from stdout. A
``script`` run (generated code, code actions) may also call registry tools: stub functions
send ``{"call": ...}`` frames on that pipe, the host runs each call through its ``on_call``
(the executor, with the tool's own limits) and answers on a second pipe.
stdout and stderr are read concurrently with one byte budget; exceeding it, or the wall-clock
limit, kills the whole tree: the code runs as pid 1 of its own pid namespace
(``--as-pid-1``), so killing it ends every process in the namespace, and bwrap, its direct
parent, reaps it at once; the cgroup is emptied too. The verdict comes from the real exit
status.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from toolrun.sandbox import bootstrap
from toolrun.sandbox.cgroups import CgroupLayout, RunCgroup
from toolrun.sandbox.seccomp import build_filter

log = logging.getLogger(__name__)
Status = Literal["ok", "error", "killed", "timeout", "output_limit"]
Network = Literal["none", "loopback"]

BOOTSTRAP_SOURCE = Path(bootstrap.__file__).read_text()
STDERR_KEEP_BYTES = 64 << 10
PROGRAM_DIR = "/opt/toolrun"
MAX_PROGRESS_EVENTS = 1000
MAX_TOOL_CALLS = 256  # per script run
_READ_CHUNK = 1 << 16
_START_TIMEOUT_S = 10.0
_EMPTY_CGROUP_TIMEOUT_S = 5.0
_KILL_GRACE_S = 2.0
# Waits here use asyncio.timeout()/asyncio.wait(), never asyncio.wait_for(): on 3.11 a
# wait_for whose inner await finishes as the task is cancelled drops the cancellation, and a
# cancelled call must never keep running in its sandbox.
_SYSTEM_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_CHILD_PID = re.compile(rb'"child-pid"\s*:\s*(\d+)')


@dataclass(frozen=True)
class SandboxLimits:
    """What one run may use. Defaults follow the hostile-code battery's assumptions."""

    wall_s: float = 10.0
    cpu_s: float = 5.0
    memory_mb: int = 512
    pids: int = 64
    scratch_mb: int = 64
    file_mb: int = 64
    nofile: int = 256
    output_bytes: int = 1 << 20
    result_bytes: int = 8 << 20
    network: Network = "none"


@dataclass(frozen=True)
class SandboxHost:
    """How this machine runs sandboxes (found once by :func:`toolrun.sandbox.probe.probe`)."""

    bwrap: str | None  # None: the unsandboxed fallback (operator opt-in; see probe)
    python: str
    python_prefix: str
    uid: int | None  # drop to this uid (service runs as root); None: run as ourselves
    uid_span: int
    cgroups: CgroupLayout | None
    landlock_abi: int


# A script's call of a registry tool, answered by the host: ``(tool, arguments) -> reply``,
# where the reply is ``{"value": ...}`` or ``{"error": "..."}``.
CallHandler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass
class SandboxRequest:
    """One run: tool source and its entrypoint (``mode="code"``), a command (``"exec"``) or a
    script run as ``__main__`` (``"script"``), whose ``stubs`` (``{module: {name: {"tool":
    id, "params": [names]}}}``) are importable functions calling ``on_call``."""

    mode: Literal["code", "exec", "script"]
    limits: SandboxLimits
    source: str = ""
    entrypoint: str = "main"
    arguments: dict[str, Any] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)
    stdin: bytes | None = None
    env: dict[str, str] = field(default_factory=dict)
    program: tuple[str, bytes] | None = None  # exec mode: (name, content) copied in as argv[0]
    on_progress: Callable[[dict[str, Any]], None] | None = None
    stubs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    on_call: CallHandler | None = None


@dataclass
class SandboxOutcome:
    """What happened; ``result`` is set only when the code returned normally."""

    status: Status
    reason: str
    exit_code: int | None = None
    signal: int | None = None
    has_result: bool = False
    result: Any = None
    error: dict[str, Any] | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    output_total: int = 0
    wall_s: float = 0.0
    out_of_memory: bool = False
    uid: int | None = None
    progress: list[dict[str, Any]] = field(default_factory=list)


class SandboxStartError(RuntimeError):
    """bwrap could not set the sandbox up (a host problem, not the tool's)."""


_uids = itertools.count()


class Sandbox:
    """Starts sandboxed runs on a probed :class:`SandboxHost`."""

    def __init__(self, host: SandboxHost) -> None:
        self.host = host

    def _next_uid(self) -> int | None:
        """A uid for one run. Runs in one process take them in turn; processes start at
        different places (by pid), so API replicas and workers rarely share one at a time. A
        shared uid is not a breach (each run has its own pid, mount and network namespaces)
        but shares ``RLIMIT_NPROC``; the pids cgroup is the real task limit."""
        if self.host.uid is None:
            return None
        return self.host.uid + (os.getpid() * 31 + next(_uids)) % self.host.uid_span

    def argv(self, request: SandboxRequest, fds: dict[str, int]) -> list[str]:
        """bwrap's command line, or the bare interpreter's in the unsandboxed fallback."""
        inner = [self.host.python, "-I", "-S", "-B", "-c", BOOTSTRAP_SOURCE]
        inner += [str(fds["request"]), str(fds["result"])]
        if "reply" in fds:
            inner.append(str(fds["reply"]))
        if self.host.bwrap is None:
            return inner
        limits = request.limits
        argv = [
            self.host.bwrap,
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--as-pid-1",
            "--new-session",
            "--clearenv",
            "--hostname",
            "sandbox",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        for name in _SYSTEM_DIRS:
            path = Path("/") / name
            if path.is_symlink():
                argv += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                argv += ["--ro-bind", str(path), str(path)]
        for prefix in self._extra_read_only():
            argv += ["--ro-bind", prefix, prefix]
        if "program" in fds and request.program is not None:
            destination = f"{PROGRAM_DIR}/{request.program[0]}"
            argv += ["--perms", "0555", "--ro-bind-data", str(fds["program"]), destination]
        argv += ["--proc", "/proc", "--dev", "/dev"]
        argv += ["--size", str(4 << 20), "--tmpfs", "/dev/shm"]
        argv += ["--size", str(limits.scratch_mb << 20), "--tmpfs", "/tmp"]
        argv += ["--chdir", "/tmp", "--remount-ro", "/"]
        argv += ["--seccomp", str(fds["seccomp"])]
        argv += ["--info-fd", str(fds["info"]), "--block-fd", str(fds["block"])]
        return argv + inner

    def _extra_read_only(self) -> list[str]:
        """The interpreter's prefix, when it is not under /usr (which is always bound)."""
        if _under(self.host.python_prefix, "/usr"):
            return []
        return [self.host.python_prefix]

    def program_path(self, request: SandboxRequest, scratch: str | None) -> str | None:
        """Where a copied-in program is, as the code sees it."""
        if request.program is None:
            return None
        return f"{scratch or PROGRAM_DIR}/{request.program[0]}"

    def request_document(
        self, request: SandboxRequest, uid: int | None, scratch: str | None
    ) -> dict[str, Any]:
        """What the bootstrap needs; ``scratch`` is the fallback's private work directory."""
        limits = request.limits
        cpu = max(1, round(limits.cpu_s))
        mib = 1 << 20
        # With a memory cgroup, RLIMIT_AS is only a backstop: it also caps thread stacks.
        address_space = (limits.memory_mb * 4 if self.host.cgroups else limits.memory_mb) * mib
        rlimits: dict[str, tuple[int, int]] = {
            "cpu": (cpu, cpu + 1),
            "as": (address_space, address_space),
            "fsize": (limits.file_mb * mib, limits.file_mb * mib),
            "nofile": (limits.nofile, limits.nofile),
            "core": (0, 0),
        }
        if uid is not None:  # RLIMIT_NPROC counts every process of the uid: only a private one
            rlimits["nproc"] = (limits.pids, limits.pids)
        landlock = None
        env = dict(request.env)
        if self.host.landlock_abi:
            system = [str(Path("/") / d) for d in _SYSTEM_DIRS if (Path("/") / d).is_dir()]
            landlock = {
                "read": ["/usr", *system, "/proc", PROGRAM_DIR, *self._extra_read_only()],
                "dev": ["/dev"],
                "write": ["/tmp", "/dev/shm"],
                "deny_tcp": limits.network == "none",
            }
            if scratch is not None:  # no private /dev, /tmp or /proc here: the host's
                landlock["read"] = ["/usr", *system, *self._extra_read_only()]
                landlock["dev"] = ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"]
                landlock["write"] = [scratch]
        if scratch is not None:
            env.update(HOME=scratch, TMPDIR=scratch)
        argv = list(request.argv)
        program = self.program_path(request, scratch)
        if program is not None:
            argv = [program, *argv[1:]]
        return {
            "mode": request.mode,
            "source": request.source,
            "entrypoint": request.entrypoint,
            "arguments": request.arguments,
            "stubs": request.stubs,
            "argv": argv,
            "env": env,
            "rlimits": rlimits,
            "landlock": landlock,
        }

    async def run(self, request: SandboxRequest) -> SandboxOutcome:
        return await _Run(self, request).execute()


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class _Run:
    """The state of one run; see :meth:`Sandbox.run`."""

    def __init__(self, sandbox: Sandbox, request: SandboxRequest) -> None:
        self.sandbox = sandbox
        self.request = request
        self.limits = request.limits
        self.uid = sandbox._next_uid()
        self.cgroup: RunCgroup | None = None
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.output_total = 0
        self.result_bytes = 0
        self.verdict: Status | None = None  # set when the runner stops the run itself
        self.reason = ""
        self.process: asyncio.subprocess.Process | None = None
        self.child_pid: int | None = None
        self.child_start_time: int | None = None
        self.open_fds: set[int] = set()
        self.scratch: str | None = None
        self.final_frame: dict[str, Any] | None = None
        self.progress: list[dict[str, Any]] = []
        self.stopped = asyncio.Event()
        self.calls: list[asyncio.Task[None]] = []
        self.reply: asyncio.StreamWriter | None = None
        self.reply_lock = asyncio.Lock()

    async def execute(self) -> SandboxOutcome:
        started = time.monotonic()
        host = self.sandbox.host
        sandboxed = host.bwrap is not None
        try:
            if host.cgroups is not None:
                memory = self.limits.memory_mb << 20
                self.cgroup = RunCgroup(host.cgroups, memory, self.limits.pids)
                self.cgroup.create()  # inside the try: teardown removes a half-made one
            names = ["request", "result"] + (["seccomp", "info", "block"] if sandboxed else [])
            if self.request.on_call is not None:
                names.append("reply")
            ends = {name: self._pipe() for name in names}
            child_ends = {"request": ends["request"][0], "result": ends["result"][1]}
            if "reply" in ends:
                child_ends["reply"] = ends["reply"][0]
            if sandboxed:
                _write_all(ends["seccomp"][1], build_filter(self.limits.network == "loopback"))
                self._close(ends["seccomp"][1])
                child_ends.update(
                    seccomp=ends["seccomp"][0], info=ends["info"][1], block=ends["block"][0]
                )
                if self.request.program is not None:
                    child_ends["program"] = self._memfd(self.request.program[1])
            else:
                self.scratch = tempfile.mkdtemp(prefix="toolrun-scratch-")
                if self.uid is not None:
                    os.chown(self.scratch, self.uid, self.uid)
                if self.request.program is not None:
                    path = Path(self.scratch) / self.request.program[0]
                    path.write_bytes(self.request.program[1])
                    path.chmod(0o555)
            argv = self.sandbox.argv(self.request, child_ends)
            ids: dict[str, Any] = {}
            if self.uid is not None:
                ids = {"user": self.uid, "group": self.uid, "extra_groups": []}
            spawn = asyncio.ensure_future(
                asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.PIPE
                    if self.request.stdin is not None
                    else asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    pass_fds=tuple(child_ends.values()),
                    start_new_session=True,
                    cwd=self.scratch,
                    env={},
                    **ids,
                )
            )
            try:
                self.process = await asyncio.shield(spawn)
            except asyncio.CancelledError:
                # Cancelled mid-spawn, asyncio would kill bwrap and wait for its pipes, which
                # the sandbox's still-blocked first process holds (it waits on --block-fd,
                # which only we can close): let the spawn finish, then tear down as usual.
                self.process = await spawn
                raise
            for fd in child_ends.values():
                self._close(fd)
            parent_ends = {"request": ends["request"][1], "result": ends["result"][0]}
            if "reply" in ends:
                self.open_fds.discard(ends["reply"][1])  # the writer owns it from here
                self.reply = await _pipe_writer(ends["reply"][1])
            if sandboxed:
                parent_ends.update(info=ends["info"][0], block=ends["block"][1])
            return await self._supervise(parent_ends, started)
        finally:
            for task in self.calls:
                task.cancel()
            await asyncio.gather(*self.calls, return_exceptions=True)
            if self.reply is not None:
                self.reply.close()
            for fd in list(self.open_fds):
                self._close(fd)
            await self._teardown()
            if self.scratch is not None:
                shutil.rmtree(self.scratch, ignore_errors=True)

    def _memfd(self, data: bytes) -> int:
        fd = os.memfd_create("toolrun-program", os.MFD_CLOEXEC)
        self.open_fds.add(fd)
        _write_all(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    def _pipe(self) -> tuple[int, int]:
        read_end, write_end = os.pipe()
        self.open_fds.update((read_end, write_end))
        return read_end, write_end

    def _close(self, fd: int) -> None:
        if fd in self.open_fds:
            self.open_fds.discard(fd)
            os.close(fd)

    async def _supervise(self, fds: dict[str, int], started: float) -> SandboxOutcome:
        process = self.process
        assert process is not None and process.stdout is not None and process.stderr is not None
        deadline = started + self.limits.wall_s
        readers = [
            asyncio.create_task(self._drain(process.stdout, keep="head")),
            asyncio.create_task(self._drain(process.stderr, keep="tail")),
            asyncio.create_task(self._read_results(fds["result"])),
        ]
        watchers: list[asyncio.Task[Any]] = []
        try:
            if "info" in fds:
                try:
                    async with asyncio.timeout(max(_START_TIMEOUT_S, self.limits.wall_s)):
                        child_pid = await _read_child_pid(fds["info"])
                except TimeoutError:
                    raise SandboxStartError(
                        "bubblewrap did not start the sandbox in time"
                    ) from None
            else:  # unsandboxed fallback: the interpreter waits for its request before any code
                child_pid = process.pid
            if child_pid is None:
                async with asyncio.timeout(_START_TIMEOUT_S):
                    await process.wait()
                raise SandboxStartError(
                    "bubblewrap could not start the sandbox: "
                    + bytes(self.stderr).decode(errors="replace").strip()[-2000:]
                )
            self.child_pid = child_pid
            state = _process_state(child_pid)
            self.child_start_time = state[2] if state else None
            if self.cgroup is not None:
                try:
                    self.cgroup.add(child_pid)
                except OSError as exc:
                    raise SandboxStartError(f"cannot put the sandbox in its cgroup: {exc}") from exc
            if "block" in fds:
                _write_all(fds["block"], b"g")
                self._close(fds["block"])
            document = self.sandbox.request_document(self.request, self.uid, self.scratch)
            request = json.dumps(document).encode()
            self.open_fds.discard(fds["request"])  # the writer owns it from here
            with contextlib.suppress(ConnectionError):  # the code died first: its status says why
                await _write_and_close(fds["request"], request)
            if self.request.stdin is not None and process.stdin is not None:
                readers.append(asyncio.create_task(_feed(process.stdin, self.request.stdin)))
            exited = asyncio.create_task(process.wait())
            stopped = asyncio.create_task(self.stopped.wait())
            watchers += [exited, stopped]
            done, _ = await asyncio.wait(
                {exited, stopped},
                timeout=max(0.0, deadline - time.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            stopped.cancel()
            if exited not in done:
                if self.verdict is None:
                    self._stop("timeout", f"the wall-clock limit of {self.limits.wall_s:g} s")
                self._kill()
            await self._reap(exited)
            await asyncio.wait(readers, timeout=_START_TIMEOUT_S)
        except BaseException:
            self._kill()
            raise
        finally:
            for task in [*readers, *watchers]:
                task.cancel()
            await asyncio.gather(*readers, *watchers, return_exceptions=True)
        return self._outcome(process.returncode, time.monotonic() - started)

    async def _reap(self, exited: asyncio.Task[int]) -> None:
        """Wait for bwrap to exit; if killing the sandbox's init did not end it, kill bwrap."""
        await asyncio.wait({exited}, timeout=_KILL_GRACE_S)
        if not exited.done():
            log.warning("bwrap (pid %s) outlived its sandbox; killing it", self.process_pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process_pid, signal.SIGKILL)
            await exited

    @property
    def process_pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _stop(self, verdict: Status, reason: str) -> None:
        if self.verdict is None:
            self.verdict = verdict
            self.reason = reason
        self._kill()
        self.stopped.set()

    def _kill(self) -> None:
        """Kill the sandbox from the inside out: its process (pid 1 of its pid namespace, whose
        death kills every process in the namespace) and its cgroup, so that bwrap sees its
        child die and reaps it. bwrap itself is killed only if it lingers (:meth:`_reap`)."""
        if self.child_pid is not None and self.sandbox.host.bwrap is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.child_pid, signal.SIGKILL)
        elif self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        if self.cgroup is not None:
            self.cgroup.kill_all()

    async def _drain(self, stream: asyncio.StreamReader, keep: Literal["head", "tail"]) -> None:
        """Read a stream to its end, keeping at most the budget; past it, stop the run and
        discard the rest (the pipe must still reach EOF, or the process never counts as
        finished)."""
        budget = self.limits.output_bytes
        while chunk := await stream.read(_READ_CHUNK):
            self.output_total += len(chunk)
            if self.verdict == "output_limit":
                continue
            if keep == "head":
                room = budget - len(self.stdout)
                if room > 0:
                    self.stdout += chunk[:room]
            else:
                self.stderr += chunk
                if len(self.stderr) > STDERR_KEEP_BYTES:
                    del self.stderr[: len(self.stderr) - STDERR_KEEP_BYTES]
            if self.output_total > budget:
                self._stop("output_limit", f"the output limit of {budget} bytes")

    async def _read_results(self, fd: int) -> None:
        """JSON lines from the private channel, within ``result_bytes`` in all: progress
        events (at most :data:`MAX_PROGRESS_EVENTS` kept) and one final result or error.
        Anything else stops the run: the channel is for the bootstrap's frames only."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(os.dup(fd), "rb", buffering=0)
        )
        limit = self.limits.result_bytes
        try:
            pending = bytearray()
            while chunk := await reader.read(_READ_CHUNK):
                self.result_bytes += len(chunk)
                if self.result_bytes > limit:
                    self._stop("error", f"the result limit of {limit} bytes")
                    return
                start = len(pending)
                pending += chunk
                cut = 0
                while (end := pending.find(b"\n", start)) != -1:
                    if not self._frame(bytes(pending[cut:end])):
                        return
                    cut = start = end + 1
                del pending[:cut]
        finally:
            transport.close()

    def _frame(self, line: bytes) -> bool:
        """Take one frame; False (and the run stopped) when it is not a valid one."""
        try:
            frame = json.loads(line)
        except ValueError:
            frame = None
        keys = set(frame) if isinstance(frame, dict) else set()
        if keys == {"progress"} and isinstance(frame["progress"], dict):
            if len(self.progress) < MAX_PROGRESS_EVENTS:
                self.progress.append(frame["progress"])
                if self.request.on_progress is not None:
                    self.request.on_progress(frame["progress"])
            return True
        if keys == {"call"} and self.request.on_call is not None and self.reply is not None:
            call = frame["call"]
            if not (
                isinstance(call, dict)
                and isinstance(call.get("id"), int)
                and isinstance(call.get("tool"), str)
                and isinstance(call.get("arguments"), dict)
            ):
                self._stop("error", "the sandbox sent a malformed call frame")
                return False
            if len(self.calls) >= MAX_TOOL_CALLS:
                self._stop("error", f"more than {MAX_TOOL_CALLS} tool calls in one run")
                return False
            self.calls.append(asyncio.create_task(self._answer(call)))
            return True
        if keys in ({"result"}, {"error"}) and self.final_frame is None:
            self.final_frame = frame
            return True
        self._stop("error", "the sandbox sent a malformed result frame")
        return False

    async def _answer(self, call: dict[str, Any]) -> None:
        """Run one tool call for the script and write its reply (one JSON line)."""
        assert self.request.on_call is not None and self.reply is not None
        try:
            reply = await self.request.on_call(call["tool"], call["arguments"])
        except Exception as exc:  # the host's failure is the call's error, not the run's
            log.warning("a script's tool call failed on the host", exc_info=True)
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        line = json.dumps({"id": call["id"], **reply}, default=str).encode() + b"\n"
        async with self.reply_lock:
            with contextlib.suppress(ConnectionError):  # the script is gone: nobody to tell
                self.reply.write(line)
                await self.reply.drain()

    def _outcome(self, returncode: int | None, wall_s: float) -> SandboxOutcome:
        out_of_memory = self.cgroup.out_of_memory() if self.cgroup is not None else False
        outcome = SandboxOutcome(
            status="ok",
            reason="",
            exit_code=returncode,
            stdout=bytes(self.stdout),
            stderr=bytes(self.stderr),
            output_total=self.output_total,
            wall_s=wall_s,
            out_of_memory=out_of_memory,
            uid=self.uid,
            progress=list(self.progress),
        )
        final = self.final_frame
        if self.verdict is not None:
            outcome.status, outcome.reason = self.verdict, self.reason
            return outcome
        code = returncode if returncode is not None else -1
        if (code > 128 and code - 128 < 65) or code < 0:
            number = code - 128 if code > 128 else -code
            outcome.status = "killed"
            outcome.signal = number
            outcome.reason = f"killed by {_signal_name(number)}"
            if out_of_memory:
                outcome.reason += f" (out of memory: the {self.limits.memory_mb} MiB limit)"
            elif number in (signal.SIGXCPU, signal.SIGKILL) and wall_s >= self.limits.cpu_s:
                outcome.reason += f" (at most the CPU limit of {self.limits.cpu_s:g} s)"
            return outcome
        if code != 0:
            outcome.status = "error"
            outcome.reason = f"exited with status {code}"
            if final is not None and isinstance(final.get("error"), dict):
                outcome.error = final["error"]
            return outcome
        if self.request.mode in ("code", "script"):
            if final is None or "result" not in final:
                outcome.status = "error"
                outcome.reason = "the code exited before returning a result"
                return outcome
            outcome.has_result = True
            outcome.result = final["result"]
        return outcome

    async def _teardown(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self._kill()
            try:
                async with asyncio.timeout(_KILL_GRACE_S):
                    await self.process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_START_TIMEOUT_S):
                        await self.process.wait()
        deadline = time.monotonic() + _EMPTY_CGROUP_TIMEOUT_S
        if self.child_pid is not None and self.sandbox.host.bwrap is not None:
            await _await_gone(self.child_pid, self.child_start_time, deadline)
        if self.cgroup is None:
            return
        while self.cgroup.kill_all() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        while not self.cgroup.remove() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


def _process_state(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of ``pid``, or None when there is no such process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1]), int(fields[19])


async def _await_gone(pid: int, start_time: int | None, deadline: float) -> None:
    """Wait until the sandbox's process is gone (killed, and reaped by bwrap): only then is its
    cgroup empty. The start time tells a reused pid apart."""
    while time.monotonic() < deadline:
        state = _process_state(pid)
        if state is None or state[2] != start_time:
            return
        if state[0] != "Z":
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.005)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


async def _read_child_pid(fd: int) -> int | None:
    """bwrap's ``--info-fd`` JSON names the sandbox's first process; None if bwrap failed."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(os.dup(fd), "rb", buffering=0)
    )
    try:
        seen = b""
        while chunk := await reader.read(4096):
            seen += chunk
            match = _CHILD_PID.search(seen)
            if match and re.search(rb'"child-pid"\s*:\s*\d+\s*[,}]', seen):
                return int(match.group(1))
        return None
    finally:
        transport.close()


async def _pipe_writer(fd: int) -> asyncio.StreamWriter:
    """A stream writer over the write end of a pipe (which it then owns)."""
    loop = asyncio.get_running_loop()
    pipe = os.fdopen(fd, "wb", buffering=0)
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.streams.FlowControlMixin(loop=loop), pipe
    )
    return asyncio.StreamWriter(transport, protocol, None, loop)


async def _write_and_close(fd: int, data: bytes) -> None:
    """Write ``data`` to a pipe without blocking the event loop, then close it (EOF)."""
    writer = await _pipe_writer(fd)
    try:
        writer.write(data)
        await writer.drain()
    finally:
        writer.close()


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    with contextlib.suppress(ConnectionError):
        stdin.write(data)
        await stdin.drain()
        stdin.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
