"""Finds out, once at start-up, which isolation this machine can give sandboxed tools.

The report is logged by ``toolrun serve``, served at ``GET /isolation``, and consulted before
every sandboxed call: when the sandbox is unavailable a ``sandbox`` tool is refused with the
reason, never silently run with less isolation (unless the operator opted in to a fallback).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import stat
import sys
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from toolrun.config import SandboxSettings
from toolrun.sandbox.cgroups import detect_layout
from toolrun.sandbox.launcher import (
    Sandbox,
    SandboxHost,
    SandboxLimits,
    SandboxRequest,
    SandboxStartError,
)
from toolrun.sandbox.seccomp import SeccompUnavailable, build_filter

T = TypeVar("T")
FALLBACK_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")
LANDLOCK_CREATE_RULESET = 444


@dataclass
class IsolationReport:
    """What the sandbox tier has on this machine; ``available`` is the bottom line."""

    available: bool
    reason: str = ""
    host: SandboxHost | None = None
    mode: str = "unavailable"  # bubblewrap | unsandboxed | unavailable
    layers: dict[str, str] = field(default_factory=dict)
    weaknesses: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sandbox": {
                "available": self.available,
                "mode": self.mode,
                "reason": self.reason or None,
                "layers": self.layers,
                "weaknesses": self.weaknesses,
            }
        }

    def summary(self) -> str:
        if not self.available:
            return f"sandbox tier UNAVAILABLE: {self.reason}"
        layers = "; ".join(f"{k}: {v}" for k, v in self.layers.items())
        weak = f"; WEAKER: {' / '.join(self.weaknesses)}" if self.weaknesses else ""
        return f"sandbox tier available, {self.mode} ({layers}){weak}"


def _traversable_by_others(path: Path) -> bool:
    """Whether a different, unprivileged uid can reach and execute ``path``."""
    try:
        target = path.resolve(strict=True)
        if not os.stat(target).st_mode & stat.S_IXOTH:
            return False
        return all(os.stat(parent).st_mode & stat.S_IXOTH for parent in target.parents)
    except OSError:
        return False


def _choose_python(configured: str | None, separate_uid: bool) -> tuple[str, str] | None:
    """An interpreter the sandbox can run, and its prefix (bound read-only)."""
    candidates = [configured] if configured else [sys.executable, *FALLBACK_PYTHONS]
    base = Path(sys.base_prefix) / "bin" / Path(sys.executable).name
    if not configured:
        candidates.insert(1, str(base))
    for candidate in candidates:
        if candidate is None:
            continue
        path = Path(candidate)
        if not path.exists():
            continue
        real = path.resolve()  # a virtualenv's python links to its base interpreter
        if separate_uid and not _traversable_by_others(real):
            continue
        prefix = _install_prefix(real)
        if prefix is not None:
            return str(real), prefix
    return None


def _install_prefix(interpreter: Path) -> str | None:
    """The directory an interpreter was installed under (``<prefix>/bin/python3``), bound
    read-only into every sandbox: ``/usr`` for a system Python. None when it does not look
    like an installation (no ``<prefix>/lib/python3.*``) or is a directory that must never be
    bound (``/``, a home directory)."""
    prefix = interpreter.parent.parent
    if prefix == Path("/usr") or Path("/usr") in prefix.parents:
        return "/usr"
    forbidden = {Path("/"), Path.home(), Path("/home"), Path("/root")}
    if prefix in forbidden or prefix.parent == Path("/home"):
        return None
    if not any(prefix.glob("lib/python3.*")):
        return None
    return str(prefix)


def landlock_abi() -> int:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    version = int(libc.syscall(LANDLOCK_CREATE_RULESET, None, 0, 1))
    return max(version, 0)


def probe(
    *,
    bwrap: str = "bwrap",
    python: str | None = None,
    uid: int = 64000,
    uid_span: int = 1000,
    fallback: str = "refuse",
) -> IsolationReport:
    """Inspect the machine and start one trial sandbox; see the module docstring.

    With ``fallback="unsandboxed"`` (an operator's explicit choice), a machine without a
    working bubblewrap gets the weaker tier: a plain child process under its own uid, with
    rlimits, Landlock and a cgroup where available, and the report says so."""
    report = _probe_bubblewrap(bwrap, python, uid, uid_span)
    if report.available or fallback != "unsandboxed":
        return report
    weak = _probe_unsandboxed(python, uid, uid_span)
    weak.weaknesses.insert(
        0,
        f"UNSANDBOXED fallback chosen by the operator ({report.reason}): no namespaces and "
        "no seccomp; the host's files, processes and network are reachable wherever "
        "Landlock, the uid and file permissions do not stop them",
    )
    return weak


_cache: dict[tuple[Any, ...], IsolationReport] = {}
_cache_lock = threading.Lock()


def probe_with(config: SandboxSettings) -> IsolationReport:
    """:func:`probe` for the sandbox settings, once per process and configuration (the
    machine does not change while the service runs)."""
    key = (config.bwrap, config.python, config.uid, config.uid_span, config.fallback)
    with _cache_lock:
        if key not in _cache:
            _cache[key] = probe(
                bwrap=config.bwrap,
                python=config.python,
                uid=config.uid,
                uid_span=config.uid_span,
                fallback=config.fallback,
            )
        return _cache[key]


def _base_host(python: str | None, uid: int, uid_span: int) -> SandboxHost | str:
    as_root = os.geteuid() == 0
    chosen = _choose_python(python, separate_uid=as_root)
    if chosen is None:
        return (
            "no Python interpreter the sandbox uid can execute was found; "
            "set TOOLRUN_SANDBOX__PYTHON to one outside private directories"
        )
    return SandboxHost(
        bwrap=None,
        python=chosen[0],
        python_prefix=chosen[1],
        uid=uid if as_root else None,
        uid_span=uid_span,
        cgroups=detect_layout(),
        landlock_abi=landlock_abi(),
    )


def _probe_bubblewrap(bwrap: str, python: str | None, uid: int, uid_span: int) -> IsolationReport:
    if not sys.platform.startswith("linux"):
        return IsolationReport(False, "the sandbox needs Linux (namespaces, seccomp)")
    bwrap_path = shutil.which(bwrap)
    if bwrap_path is None:
        return IsolationReport(
            False,
            f"bubblewrap ({bwrap}) is not installed; install it (Debian/Ubuntu: "
            "apt-get install bubblewrap), as `make run`/`make test` do",
        )
    try:
        build_filter(False)
    except SeccompUnavailable as exc:
        return IsolationReport(False, str(exc))
    base = _base_host(python, uid, uid_span)
    if isinstance(base, str):
        return IsolationReport(False, base)
    host = replace(base, bwrap=bwrap_path)
    failure = _trial_failure(host)
    if failure:
        return IsolationReport(False, failure, host=host)
    report = IsolationReport(True, host=host, mode="bubblewrap")
    report.layers = {
        "bubblewrap": f"{bwrap_path} (user, pid, net, mount, ipc, uts, cgroup namespaces)",
        "seccomp": "libseccomp filter (deny-list, foreign ABIs killed)",
        **_common_layers(host),
    }
    _add_weaknesses(report, host)
    return report


def _probe_unsandboxed(python: str | None, uid: int, uid_span: int) -> IsolationReport:
    host = _base_host(python, uid, uid_span)
    if isinstance(host, str):
        return IsolationReport(False, host)
    # Without namespaces, only a uid of its own (the service's files, processes and
    # environment are another user's) and Landlock (the host filesystem) separate the code
    # from the service: without both, there is nothing worth calling a tier.
    if host.uid is None or not host.landlock_abi:
        missing = "a uid of its own (run the service as root)" if host.uid is None else "Landlock"
        return IsolationReport(False, f"the unsandboxed fallback needs {missing}", host=host)
    failure = _trial_failure(host)
    if failure:
        return IsolationReport(False, failure, host=host)
    report = IsolationReport(True, host=host, mode="unsandboxed", layers=_common_layers(host))
    _add_weaknesses(report, host)
    return report


def _common_layers(host: SandboxHost) -> dict[str, str]:
    last = host.uid + host.uid_span - 1 if host.uid is not None else None
    return {
        "uid": f"unprivileged uids {host.uid}..{last}"
        if host.uid is not None
        else f"the service's own uid {os.geteuid()} (not root)",
        "landlock": f"ABI {host.landlock_abi}" if host.landlock_abi else "not in this kernel",
        "cgroup": host.cgroups.describe() if host.cgroups else "none writable",
        "rlimits": "cpu, as, fsize, nofile, core=0" + (", nproc" if host.uid is not None else ""),
        "python": f"{host.python} (prefix {host.python_prefix}, read-only)",
    }


def _add_weaknesses(report: IsolationReport, host: SandboxHost) -> None:
    if host.cgroups is None:
        report.weaknesses.append(
            "no writable memory+pids cgroup: memory is limited by RLIMIT_AS only, and "
            "tmpfs pages are bounded only by the tmpfs sizes"
        )
    if not host.landlock_abi:
        report.weaknesses.append("no Landlock in this kernel")
    pattern = Path("/proc/sys/kernel/core_pattern")
    with contextlib.suppress(OSError):
        if pattern.read_text().startswith("|"):
            report.weaknesses.append(
                "core_pattern pipes core dumps to a host program, which RLIMIT_CORE=0 does not stop"
            )


def _trial_failure(host: SandboxHost) -> str | None:
    try:
        trial = _run_coroutine(_trial(host))
    except (SandboxStartError, OSError) as exc:
        return f"a trial sandbox failed to start: {exc}"
    if trial.status != "ok" or trial.result != "ok":
        detail = trial.reason or trial.stderr.decode(errors="replace")[-500:]
        return f"a trial sandbox failed: {detail}"
    return None


def _run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run``, also when this thread already runs an event loop (then in another)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _trial(host: SandboxHost) -> Any:
    sandbox = Sandbox(host)
    request = SandboxRequest(
        mode="code",
        limits=SandboxLimits(wall_s=20, cpu_s=10),
        source="def main():\n    return 'ok'\n",
    )
    return await sandbox.run(request)
