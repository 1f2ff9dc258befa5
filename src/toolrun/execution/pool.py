"""A pool of long-lived worker processes that run Python tool callables out of the API process.

Each worker is a ``forkserver`` (or ``spawn``) child with its own socket and its own session
and process group, so a kill takes the tool's children along; a watchdog thread in the worker
kills that group when the socket closes, so workers never outlive the API process. A call
takes a free worker (at most ``size`` run at once), sends one JSON frame and awaits the answer
on the event loop, without threads; progress frames the tool sends before its answer are
checked and handed to the caller's ``on_progress``. A worker that dies, times out, is
cancelled or breaks the protocol is killed with its group and replaced in the background; its
slot comes back once the replacement is ready, so the pool keeps serving.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import multiprocessing
import multiprocessing.util  # registers its exit hook before ours, so ours runs first
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from typing import Any, Literal

from toolrun import progress
from toolrun.errors import InfrastructureError
from toolrun.execution import worker as worker_module
from toolrun.response import Response

log = logging.getLogger(__name__)

MpContext = Literal["forkserver", "spawn"]
_HEADER = worker_module.HEADER
_STREAM_LIMIT = 1 << 20
_EXIT_WAIT_S = 5.0


class _WorkerGone(Exception):
    """The worker's socket closed or broke."""


class _ResultTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


@dataclass(frozen=True)
class PoolStats:
    size: int
    busy: int
    """Calls holding a worker."""
    waiting: int
    """Calls waiting for a free worker."""
    restarts: int
    """Workers replaced because they died, timed out, were cancelled or misbehaved."""
    recycled: int
    """Workers replaced after ``max_tasks_per_worker`` calls."""


def describe_exit(code: int | None) -> str:
    if code is None:
        return "it closed its connection"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class _Worker:
    """Parent-side handle of one worker process."""

    def __init__(self, process: BaseProcess, loop: asyncio.AbstractEventLoop) -> None:
        self.process = process
        self.pid: int = process.pid or 0
        self.calls = 0
        self.ready = False  # handshake done: the worker leads its own process group
        self.closed = False
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        # One reader on the sentinel for the worker's life: exit is noticed without polling.
        self.exited: asyncio.Future[None] = loop.create_future()
        self._loop = loop
        loop.add_reader(process.sentinel, self._on_exit)

    def _on_exit(self) -> None:
        self._loop.remove_reader(self.process.sentinel)
        if not self.exited.done():
            self.exited.set_result(None)

    def usable(self) -> bool:
        return not self.exited.done() and self.reader is not None and not self.reader.at_eof()

    async def send(self, payload: bytes) -> None:
        assert self.writer is not None
        try:
            self.writer.write(_HEADER.pack(len(payload)) + payload)
            await self.writer.drain()
        except ConnectionError as exc:
            raise _WorkerGone from exc

    async def read_frame(self, limit: int) -> bytes:
        assert self.reader is not None
        try:
            (size,) = _HEADER.unpack(await self.reader.readexactly(_HEADER.size))
            if size > limit:
                raise _ResultTooLarge(size)
            return await self.reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise _WorkerGone from exc

    def send_kill(self) -> None:
        """SIGKILL the worker's process group, so the tool's own children die with it."""
        if self.closed:
            return
        if self.ready:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        elif not self.exited.done():  # not yet its own group leader
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def kill(self) -> None:
        self.send_kill()
        if self.writer is not None:
            self.writer.close()

    async def wait_exit(self, timeout: float) -> int | None:
        """The exit code once the process has ended (negative: the killing signal's number)."""
        if not self.exited.done():
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self.exited)
            except TimeoutError:
                return None
        if self.closed:
            return None
        self.process.join(_EXIT_WAIT_S)  # immediate: the sentinel says it has ended
        return self.process.exitcode

    async def reap(self) -> None:
        """Make sure it is dead (and its group), then release the process handle."""
        if self.closed:
            return
        if await self.wait_exit(_EXIT_WAIT_S) is None:
            self.kill()
            await self.wait_exit(_EXIT_WAIT_S)
        if self.closed or self.process.exitcode is None:
            return
        self.send_kill()  # leftovers of the tool in the worker's group
        self.closed = True
        if self.writer is not None:
            self.writer.close()
        self._loop.remove_reader(self.process.sentinel)
        self.process.close()
        _LIVE_WORKERS.discard(self)


_LIVE_WORKERS: set[_Worker] = set()


@atexit.register
def _kill_live_workers() -> None:
    """An unclosed pool must not make interpreter exit wait for its (non-daemon) workers."""
    for worker in list(_LIVE_WORKERS):
        worker.send_kill()


class WorkerPool:
    """Runs ``pkg.module:function`` targets in worker processes; see the module docstring.

    ``max_tasks_per_worker`` recycles a worker after that many calls (leaks, caches);
    ``extra_sys_path`` is prepended to each worker's ``sys.path``; answers larger than
    ``max_result_bytes`` are refused (and the worker replaced).
    """

    def __init__(
        self,
        size: int,
        *,
        mp_context: MpContext = "forkserver",
        max_tasks_per_worker: int | None = None,
        extra_sys_path: Sequence[str | os.PathLike[str]] = (),
        max_result_bytes: int = 64 << 20,
        start_timeout_s: float = 60.0,
    ) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        if mp_context not in ("forkserver", "spawn"):
            raise ValueError("mp_context must be 'forkserver' or 'spawn' (fork is unsafe here)")
        if max_tasks_per_worker is not None and max_tasks_per_worker < 1:
            raise ValueError("max_tasks_per_worker must be at least 1")
        self.size = size
        self.max_tasks_per_worker = max_tasks_per_worker
        self.max_result_bytes = max_result_bytes
        self.start_timeout_s = start_timeout_s
        self._ctx: ForkServerContext | SpawnContext = (
            multiprocessing.get_context("forkserver")
            if mp_context == "forkserver"
            else multiprocessing.get_context("spawn")
        )
        self._extra_sys_path = [os.fspath(p) for p in extra_sys_path]
        # One entry per slot: an idle worker, or None for a slot whose worker starts on use.
        self._slots: asyncio.Queue[_Worker | None] = asyncio.Queue()
        for _ in range(size):
            self._slots.put_nowait(None)
        self._workers: set[_Worker] = set()  # every started, not yet reaped process
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy = self._waiting = self._restarts = self._recycled = 0
        self._closed = False

    async def __aenter__(self) -> WorkerPool:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def stats(self) -> PoolStats:
        return PoolStats(self.size, self._busy, self._waiting, self._restarts, self._recycled)

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        return sorted(w.pid for w in self._workers if not w.exited.done())

    async def start(self) -> None:
        """Start the workers of every idle slot that has none yet."""
        self._check_open()
        slots = [self._slots.get_nowait() for _ in range(self._slots.qsize())]
        started = await asyncio.gather(
            *(self._spawn() if s is None else _done(s) for s in slots), return_exceptions=True
        )
        for result in started:
            self._slots.put_nowait(result if isinstance(result, _Worker) else None)
        for result in started:
            if isinstance(result, BaseException):
                raise result

    async def close(self) -> None:
        """Kill every worker (with its process group) and wait until they are gone."""
        if self._closed:
            return
        self._closed = True
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        workers = list(self._workers)
        for worker in workers:
            worker.kill()
        await asyncio.gather(*(self._reap(w) for w in workers))

    async def call(
        self,
        target: str,
        arguments: dict[str, Any],
        timeout_s: float,
        *,
        source_folder: str | None = None,
        on_start: Callable[[], Awaitable[None]] | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> Response:
        """Run ``target(**arguments)`` in a free worker; every failure is an isError Response.

        ``source_folder``: the folder a discovered tool came from, mounted in the worker as the
        synthetic package its target names. ``on_start``: awaited once a worker is assigned,
        right before the call (the executor marks the job running there); if it raises, the
        worker goes back to the pool and the call does not happen. ``on_progress``: called on
        the event loop with each valid progress report of the call (invalid ones are dropped).
        Cancelling the awaiting task kills the worker.
        """
        self._check_open()
        request: dict[str, Any] = {"target": target, "arguments": arguments}
        if source_folder:
            request["folder"] = source_folder
        try:
            payload = json.dumps(request).encode()
        except (TypeError, ValueError) as exc:
            return Response.error(f"arguments are not JSON-serializable: {exc}")
        self._waiting += 1
        try:
            slot = await self._slots.get()
        finally:
            self._waiting -= 1
        self._busy += 1
        try:
            try:
                self._check_open()
                if slot is not None and not slot.usable():  # died while idle
                    self._restarts += 1
                    slot.kill()
                    self._background(self._reap(slot))
                    slot = None
                worker = slot if slot is not None else await self._spawn()
            except BaseException:
                self._slots.put_nowait(slot)
                raise
            if on_start is not None:
                try:
                    await on_start()
                except BaseException:
                    self._slots.put_nowait(worker)
                    raise
            return await self._call_on(worker, target, payload, timeout_s, on_progress)
        finally:
            self._busy -= 1

    async def _call_on(
        self,
        worker: _Worker,
        target: str,
        payload: bytes,
        timeout_s: float,
        on_progress: Callable[[dict[str, Any]], None] | None,
    ) -> Response:
        """Owns ``worker`` for one call and gives its slot back (the worker or a replacement)."""
        healthy = False
        try:
            try:
                async with asyncio.timeout(timeout_s):
                    await worker.send(payload)
                    answer = await self._answer(worker, on_progress)
            except TimeoutError:
                return Response.timed_out(timeout_s)
            except _WorkerGone:
                if self._closed:
                    return Response.error("the worker pool was closed during the call")
                code = await worker.wait_exit(_EXIT_WAIT_S)
                return Response.error(
                    f"the worker process died while running {target} ({describe_exit(code)})"
                )
            except _ResultTooLarge as exc:
                return Response.error(
                    f"the result of {target} is too large "
                    f"({exc.size} bytes; the limit is {self.max_result_bytes})"
                )
            try:
                response = Response.from_dict(answer)
            except (ValueError, TypeError, KeyError, AttributeError):
                return Response.error(f"the worker sent an invalid answer for {target}")
            healthy = True
            return response
        finally:
            if healthy:
                self._release(worker)
            else:
                self._restarts += 1
                self._discard(worker)

    async def _answer(
        self, worker: _Worker, on_progress: Callable[[dict[str, Any]], None] | None
    ) -> Any:
        """Read frames until the answer (returned parsed, or None if it is not JSON); progress
        frames on the way go to ``on_progress``, checked (see :func:`toolrun.progress.parse`)."""
        while True:
            raw = await worker.read_frame(self.max_result_bytes)
            try:
                message = json.loads(raw)
            except ValueError:
                return None
            if not (isinstance(message, dict) and len(message) == 1 and "progress" in message):
                return message
            event = progress.parse(message["progress"])
            if event is None or on_progress is None:
                continue
            try:
                on_progress(event)
            except Exception:  # the caller's bug must not break the call
                log.exception("on_progress failed")

    def _release(self, worker: _Worker) -> None:
        worker.calls += 1
        limit = self.max_tasks_per_worker
        if limit is not None and worker.calls >= limit and not self._closed:
            self._recycled += 1
            self._discard(worker)
        else:
            self._slots.put_nowait(worker)

    def _discard(self, worker: _Worker) -> None:
        """Kill at once (a cancelled call must stop now); replace in the background."""
        worker.kill()
        if self._closed:
            self._slots.put_nowait(None)
        else:
            self._background(self._replace(worker))

    async def _replace(self, old: _Worker) -> None:
        new: _Worker | None = None
        try:
            await self._reap(old)
            if not self._closed:
                new = await self._spawn()
        except Exception:
            log.exception("could not replace a worker process; the next call will retry")
        finally:
            self._slots.put_nowait(new)

    async def _reap(self, worker: _Worker) -> None:
        await worker.reap()
        if worker.closed:
            self._workers.discard(worker)

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _spawn(self) -> _Worker:
        self._check_open()
        parent_sock, child_sock = socket.socketpair()
        process = self._ctx.Process(
            target=worker_module.main,
            args=(child_sock, self._extra_sys_path),
            name="toolrun-worker",
        )
        try:
            with _main_module_hidden():
                process.start()  # blocks a few ms (the first start also launches the fork server)
        except Exception as exc:
            parent_sock.close()
            raise InfrastructureError(f"could not start a worker process: {exc}") from exc
        finally:
            child_sock.close()
        worker = _Worker(process, asyncio.get_running_loop())
        self._workers.add(worker)
        _LIVE_WORKERS.add(worker)
        try:
            worker.reader, worker.writer = await asyncio.open_unix_connection(
                sock=parent_sock, limit=_STREAM_LIMIT
            )
            async with asyncio.timeout(self.start_timeout_s):
                hello = await worker.read_frame(1024)
            if json.loads(hello) != {"ready": worker.pid}:
                raise ValueError("unexpected handshake")
        except (TimeoutError, _WorkerGone, _ResultTooLarge, ValueError) as exc:
            if isinstance(exc, TimeoutError):
                reason = f"no handshake within {self.start_timeout_s:g}s"
            else:
                reason = describe_exit(await worker.wait_exit(_EXIT_WAIT_S))
            worker.kill()
            await self._reap(worker)
            raise InfrastructureError(f"a worker process failed to start ({reason})") from exc
        except BaseException:
            parent_sock.close()
            worker.kill()
            self._background(self._reap(worker))
            raise
        worker.ready = True
        return worker

    def _check_open(self) -> None:
        if self._closed:
            raise InfrastructureError("the worker pool is closed")


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start workers without re-running the caller's ``__main__``.

    forkserver and spawn normally import the parent's main script in the child (and the fork
    server preloads it), which breaks any script or notebook that calls toolrun without an
    ``if __name__ == "__main__"`` guard. Workers only load tools by import path, so
    multiprocessing is shown a main module without ``__file__``/``__spec__`` while a worker
    (or the fork server) starts.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    names = ("__file__", "__spec__")
    saved: dict[str, Any] = {name: main.__dict__[name] for name in names if name in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


async def _done(worker: _Worker) -> _Worker:
    return worker
