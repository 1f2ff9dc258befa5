"""The first Python that runs inside the sandbox (standard library only; never imports toolrun).

The launcher starts ``python -I -S -B -c <this source> REQUEST_FD RESULT_FD [REPLY_FD]`` inside
bubblewrap. This program reads the run's request (JSON) from ``REQUEST_FD`` and closes it,
lowers the resource limits, installs the environment, applies a Landlock ruleset where the
kernel has one, closes every other inherited descriptor, and then either

* ``mode="code"``: executes the tool's source and calls its entrypoint with the arguments,
  writing ``{"result": ...}`` (or ``{"error": {...}}``) as one JSON line to ``RESULT_FD``; or
* ``mode="exec"``: replaces itself with a command (limits and Landlock carry over exec); or
* ``mode="script"``: runs the source as ``__main__`` after installing the request's
  ``stubs``: modules whose functions call registry tools through the host (a ``{"call": ...}``
  frame out, one JSON line back on ``REPLY_FD``), so generated code and code actions run here
  while each tool they call runs in its own tier.

Tool code may report progress with ``from toolrun.progress import report`` (a stand-in module
installed here that writes ``{"progress": {...}}`` lines to the same descriptor). The host
reads that descriptor as size-capped JSON lines and never trusts the code's stdout.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, NoReturn

_LANDLOCK_CREATE_RULESET, _LANDLOCK_ADD_RULE, _LANDLOCK_RESTRICT_SELF = 444, 445, 446
_PR_SET_NO_NEW_PRIVS = 38
_RLIMITS = {
    "cpu": "RLIMIT_CPU",
    "as": "RLIMIT_AS",
    "fsize": "RLIMIT_FSIZE",
    "nofile": "RLIMIT_NOFILE",
    "nproc": "RLIMIT_NPROC",
    "core": "RLIMIT_CORE",
}


def _read_all(fd: int) -> Any:
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return json.loads(b"".join(chunks).decode("utf-8"))


def _set_rlimits(limits: dict[str, list[int]]) -> None:
    import resource

    for key, (soft, hard) in limits.items():
        which = getattr(resource, _RLIMITS[key])
        resource.setrlimit(which, (soft, hard))


def _landlock(spec: dict[str, Any]) -> int:
    """Restrict this process and its children to the paths in ``spec``; returns the ABI
    version applied (0: the kernel has no Landlock)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(_LANDLOCK_CREATE_RULESET, None, 0, 1)
    if abi < 1:
        return 0
    execute, write_file, read_file, read_dir = 1, 2, 4, 8
    all_fs = (1 << 13) - 1
    if abi >= 2:
        all_fs |= 1 << 13  # REFER
    if abi >= 3:
        all_fs |= 1 << 14  # TRUNCATE
    if abi >= 5:
        all_fs |= 1 << 15  # IOCTL_DEV
    file_rights = execute | write_file | read_file | (all_fs & ((1 << 14) | (1 << 15)))
    net = 3 if abi >= 4 and spec["deny_tcp"] else 0  # BIND_TCP | CONNECT_TCP, no rule allows
    scoped = 3 if abi >= 6 else 0  # abstract unix sockets and signals stay inside the domain

    class RulesetAttr(ctypes.Structure):
        _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    attr = RulesetAttr(all_fs, net, scoped)
    size = 8 if abi < 4 else (16 if abi < 6 else 24)
    ruleset = libc.syscall(_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    grants = [(p, execute | read_file | read_dir) for p in spec["read"]]
    grants += [(p, read_file | write_file | read_dir | (all_fs & (1 << 15))) for p in spec["dev"]]
    grants += [(p, all_fs) for p in spec["write"]]
    for path, allowed in grants:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if not os.path.isdir(path):
                allowed &= file_rights
            rule = PathBeneath(allowed & all_fs, fd)
            if libc.syscall(_LANDLOCK_ADD_RULE, ruleset, 1, ctypes.byref(rule), 0) < 0:
                raise OSError(ctypes.get_errno(), "landlock_add_rule " + path)
        finally:
            os.close(fd)
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if libc.syscall(_LANDLOCK_RESTRICT_SELF, ruleset, 0) < 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    os.close(ruleset)
    return int(abi)


def _close_other_fds(keep: set[int]) -> None:
    top = 1 << 16
    low = 3
    for fd in sorted(keep):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, top)


class _Channel:
    """JSON lines to the host over the private result descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, frame: dict[str, Any]) -> None:
        data = (json.dumps(frame, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]


def _install_progress(channel: _Channel) -> None:
    import types

    def report(fraction: float | None = None, message: str | None = None, **data: Any) -> None:
        """Report progress of this call: a fraction 0..1, a message, any JSON data. The host
        checks every report again (``toolrun.progress.parse``) and drops invalid ones."""
        event = {"fraction": fraction, "message": message, "data": data}
        try:
            channel.send({"progress": event})
        except (TypeError, ValueError) as exc:
            raise TypeError("progress data must be JSON values: {}".format(exc)) from None  # noqa: UP032

    package = types.ModuleType("toolrun")
    package.__path__ = []
    module = types.ModuleType("toolrun.progress")
    setattr(module, "report", report)  # noqa: B010 (a module built at run time)
    setattr(package, "progress", module)  # noqa: B010
    sys.modules["toolrun"] = package
    sys.modules["toolrun.progress"] = module


class ToolCallError(RuntimeError):
    """A registry tool called from a script failed (its message says why)."""


class _Caller:
    """Tool calls from the script: one at a time, each answered by the host on ``REPLY_FD``."""

    def __init__(self, channel: _Channel, reply_fd: int) -> None:
        import threading

        self.channel = channel
        self.replies = os.fdopen(reply_fd, "rb")
        self.lock = threading.Lock()
        self.next_id = 0

    def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        with self.lock:
            self.next_id += 1
            try:
                frame = {"id": self.next_id, "tool": tool, "arguments": arguments}
                self.channel.send({"call": frame})
            except (TypeError, ValueError) as exc:
                raise TypeError("tool arguments must be JSON values: {}".format(exc)) from None  # noqa: UP032
            line = self.replies.readline()
        if not line:
            raise ToolCallError("the host closed the call channel")
        reply = json.loads(line)
        if "error" in reply:
            raise ToolCallError("{} failed: {}".format(tool, reply["error"]))
        return reply.get("value")


_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
    "null": None,
}


def _signature(spec: dict[str, Any]) -> Any:
    """The tool's parameters as a Python signature: schema order, required ones first (as
    keyword-or-positional), optional ones defaulting to None, annotated with their JSON
    types; ``**kwargs`` too when the schema leaves other names open."""
    import inspect

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    required = set(spec.get("required") or [])
    types_ = spec.get("types") or {}
    params = list(spec.get("params") or [])
    ordered = [p for p in params if p in required] + [p for p in params if p not in required]
    out = []
    for param in ordered:
        if not param.isidentifier():
            continue  # reachable as **{"odd-name": ...} only
        annotation = _JSON_TYPES.get(str(types_.get(param)), inspect.Parameter.empty)
        default = inspect.Parameter.empty if param in required else None
        out.append(inspect.Parameter(param, kind, default=default, annotation=annotation))
    if spec.get("open", not params):
        out.append(inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD))
    return inspect.Signature(out)


def _stub(caller: _Caller, name: str, spec: dict[str, Any]) -> Any:
    tool = spec["tool"]
    if tool == "*":  # the generic ``call(tool_id, arguments)`` of toolrun.nl.client

        def call_any(tool_id: str, arguments: Any = None) -> Any:
            return caller.call(str(tool_id), dict(arguments or {}))

        call_any.__name__ = call_any.__qualname__ = name
        return call_any
    signature = _signature(spec)

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError("{}(): {}".format(name, exc)) from None  # noqa: UP032
        named = dict(bound.arguments)  # only what was passed: defaults are the tool's own
        named.update(named.pop("kwargs", None) or {})
        return caller.call(tool, named)

    call.__name__ = call.__qualname__ = name
    call.__signature__ = signature  # type: ignore[attr-defined]
    call.__doc__ = spec.get("doc") or "Calls the registry tool {}.".format(tool)  # noqa: UP032
    return call


def _install_stubs(stubs: dict[str, dict[str, dict[str, Any]]], caller: _Caller) -> None:
    import types

    for module_name, functions in stubs.items():
        parts = module_name.split(".")
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            module = sys.modules.get(name)
            if module is None:
                module = types.ModuleType(name)
                sys.modules[name] = module
                if depth > 1:
                    setattr(sys.modules[".".join(parts[: depth - 1])], parts[depth - 1], module)
            if depth < len(parts) and not hasattr(module, "__path__"):
                module.__path__ = []
        target = sys.modules[module_name]
        for function_name, spec in functions.items():
            setattr(target, function_name, _stub(caller, function_name, spec))
    errors = types.ModuleType("toolrun.errors")
    setattr(errors, "ToolCallError", ToolCallError)  # noqa: B010
    sys.modules.setdefault("toolrun.errors", errors)


def _fail(channel: _Channel, exc: BaseException) -> NoReturn:
    """Report the code's own exception (type, message, traceback tail) and exit 1."""
    import traceback

    frames = traceback.format_exception(type(exc), exc, exc.__traceback__)
    text = "".join(frames)[-8000:]
    channel.send({"error": {"type": type(exc).__name__, "message": str(exc), "trace": text}})
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def _run_script(request: dict[str, Any], channel: _Channel) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compile(request["source"], "<script>", "exec"), namespace)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            channel.send({"error": {"type": "SystemExit", "message": str(exc.code), "trace": ""}})
            sys.stdout.flush()
            os._exit(1)
    except BaseException as exc:  # the script's own failure, reported
        _fail(channel, exc)
    sys.stdout.flush()
    channel.send({"result": None})


def _run_code(request: dict[str, Any], channel: _Channel) -> None:
    namespace: dict[str, Any] = {"__name__": "__toolrun_code__", "__builtins__": __builtins__}
    try:
        code = compile(request["source"], "<tool>", "exec")
        exec(code, namespace)
        function = namespace[request["entrypoint"]]
        value = function(**request["arguments"])
        if hasattr(value, "__await__"):
            import asyncio

            async def _await(awaitable: Any) -> Any:
                return await awaitable

            value = asyncio.run(_await(value))
    except Exception as exc:  # the tool's own failure: reported, not a crash of the sandbox
        _fail(channel, exc)
    try:
        channel.send({"result": value})
    except (TypeError, ValueError) as exc:
        message = "the return value is not JSON-serializable: {}".format(exc)  # noqa: UP032
        channel.send({"error": {"type": "TypeError", "message": message, "trace": ""}})
        os._exit(1)


def main() -> None:
    request_fd, result_fd = int(sys.argv[1]), int(sys.argv[2])
    reply_fd = int(sys.argv[3]) if len(sys.argv) > 3 else -1
    request = _read_all(request_fd)
    os.environ.clear()
    os.environ.update(request["env"])
    _set_rlimits(request["rlimits"])
    if request.get("landlock"):
        _landlock(request["landlock"])
    if request["mode"] == "exec":
        _close_other_fds(set())
        argv = request["argv"]
        os.execve(argv[0], argv, request["env"])
    _close_other_fds({result_fd, reply_fd} - {-1})
    channel = _Channel(result_fd)
    _install_progress(channel)
    if request["mode"] == "script":
        if reply_fd >= 0:
            _install_stubs(request.get("stubs") or {}, _Caller(channel, reply_fd))
        _run_script(request, channel)
    else:
        _run_code(request, channel)
    sys.stdout.flush()
    sys.stderr.flush()


if __name__ == "__main__":
    main()
