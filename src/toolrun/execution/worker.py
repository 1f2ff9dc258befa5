"""The child side of :class:`~toolrun.execution.pool.WorkerPool`: receive a call, run it, answer.

Both directions carry frames of an 8-byte big-endian length and UTF-8 JSON: the request is
``{"target", "arguments"}``, the answer a ``Response.to_dict()``. Before its answer, a call may
send any number of progress frames, ``{"progress": {"fraction", "message", "data"}}`` (from
:func:`toolrun.progress.report`); none follows the answer. JSON rather than pickle because
the parent must never unpickle bytes that untrusted tool code could forge.

This module is imported by every worker, so it stays small and imports nothing heavy.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, BinaryIO

from toolrun import progress
from toolrun.response import Response

HEADER = struct.Struct("!Q")


def load_target(target: str, cache: dict[str, Callable[..., Any]]) -> Callable[..., Any]:
    """The callable at ``pkg.module:function`` (or ``module:Class.method``), cached by target,
    wrapped to take one dict of JSON arguments (see :func:`binder`)."""
    func = cache.get(target)
    if func is None:
        module_name, _, attr_path = target.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attr_path.split("."):
            obj = getattr(obj, part)
        if not callable(obj):
            raise TypeError(f"{target} is a {type(obj).__name__}, not a callable")
        cache[target] = func = binder(obj)
    return func


def exception_response(exc: BaseException) -> Response:
    """``Type: message`` and the innermost frame, without the rest of the traceback."""
    message = str(exc)
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        text += f"\n  at {os.path.basename(last.filename)}:{last.lineno} in {last.name}"
    return Response.error(text)


def load_error(target: str, exc: BaseException) -> Response:
    return Response.error(f"cannot load tool target {target!r}: {type(exc).__name__}: {exc}")


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def binder(func: Callable[..., Any]) -> Callable[[dict[str, Any]], Any]:
    """A caller that turns JSON arguments into the types the signature declares (Pydantic
    models, enums, datetimes, tuples) before calling; plain ``func(**args)`` when the
    signature cannot be analysed (builtins, C functions)."""
    from toolrun.registry.schema import analyze_callable

    try:
        spec = analyze_callable(func)
    except Exception:
        return lambda arguments: func(**arguments)
    return spec.call


def run_call(
    target: str,
    arguments: dict[str, Any],
    cache: dict[str, Callable[..., Any]],
    runner: asyncio.Runner,
    folder: str | None = None,
) -> Response:
    """One call, every outcome folded into a Response (the worker must survive the tool)."""
    try:
        if folder and target not in cache:
            from toolrun.registry.discovery import mount_folder

            mount_folder(folder)
        func = load_target(target, cache)
    except BaseException as exc:
        return load_error(target, exc)
    try:
        result = func(arguments)
        if inspect.isawaitable(result):
            result = runner.run(_await(result))
        return Response.from_value(result)
    except BaseException as exc:  # SystemExit too: a tool may not end the worker that way
        return exception_response(exc)


def encode(response: Response) -> bytes:
    try:
        return json.dumps(response.to_dict(), ensure_ascii=False, default=str).encode()
    except (TypeError, ValueError) as exc:  # e.g. a circular structure in a hand-made Response
        return encode(Response.error(f"the result could not be serialized: {exc}"))


def send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(HEADER.pack(len(payload)) + payload)


def recv_frame(stream: BinaryIO) -> bytes:
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        raise EOFError
    (size,) = HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError
    return payload


class _Sender:
    """Writes this worker's frames. A tool may report progress from any of its threads: the
    lock keeps frames whole, and once the answer is sent the call's reports go nowhere (a
    thread the tool left behind cannot write into the next call's answer)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.in_call = False

    def begin(self) -> None:
        with self.lock:
            self.in_call = True

    def progress(self, event: dict[str, Any]) -> None:
        payload = json.dumps({"progress": event}, ensure_ascii=False).encode()
        with self.lock:
            if self.in_call:
                send_frame(self.sock, payload)

    def answer(self, payload: bytes) -> None:
        with self.lock:
            self.in_call = False
            send_frame(self.sock, payload)


def _watch_pool(sock: socket.socket) -> None:
    """Kill this worker's process group (the tool's children too) once the pool's end of the
    socket closes, even in the middle of a call: that is how workers end when the API
    process dies, whatever the start method (under forkserver the parent is the fork server,
    which outlives the API process while workers run, so PR_SET_PDEATHSIG would not fire)."""
    poller = select.poll()
    poller.register(sock.fileno(), getattr(select, "POLLRDHUP", 0) | select.POLLHUP)
    poller.poll()  # only hang-up, error or an invalid fd wake it: no data is ever consumed
    if os.getpgid(0) == os.getpid():
        os.killpg(0, signal.SIGKILL)
    os._exit(1)


def _scrub_environment() -> None:
    """Drop toolrun's own settings (secrets, database URL) from the tool's ``os.environ``.

    Defence in depth only: ``toolrun serve`` also removes them before any worker starts
    (:func:`toolrun.cli.serve.protect_process_secrets`). Code running as the same user can still
    reach what that user can; containing hostile code is the sandbox tier's job."""
    for key in [k for k in os.environ if k.upper().startswith("TOOLRUN_")]:
        del os.environ[key]


def main(sock: socket.socket, extra_sys_path: Sequence[str]) -> None:
    """Entry point of a worker process: handshake, then serve calls until the pipe closes."""
    with contextlib.suppress(OSError):  # already a group leader
        os.setsid()  # own group, which the pool kills; a terminal's Ctrl-C does not reach it
    threading.Thread(target=_watch_pool, args=(sock,), name="toolrun-watchdog", daemon=True).start()
    _scrub_environment()
    os.dup2(2, 1)  # a tool's prints go to stderr: stdout may carry a protocol (MCP over stdio)
    for entry in reversed(extra_sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    cache: dict[str, Callable[..., Any]] = {}
    stream = sock.makefile("rb")
    sender = _Sender(sock)
    progress.set_process_sink(sender.progress)
    with contextlib.suppress(EOFError, ConnectionError), asyncio.Runner() as runner:
        send_frame(sock, json.dumps({"ready": os.getpid()}).encode())
        while True:  # until the pool closes its end
            request = json.loads(recv_frame(stream))
            sender.begin()
            response = run_call(
                request["target"], request["arguments"], cache, runner, request.get("folder")
            )
            sender.answer(encode(response))
