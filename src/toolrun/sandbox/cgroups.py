"""A memory and pids cgroup per sandboxed run, where this process may create one.

The real memory limit of a run (tmpfs pages included) and its task limit are a cgroup's:
``RLIMIT_AS`` also caps threads and does not count tmpfs, and ``RLIMIT_NPROC`` counts every
process of a uid. Both cgroup v2 (one unified hierarchy) and v1 (a ``memory`` and a ``pids``
hierarchy, as on this project's CI machines) are supported. A run's cgroups are created
beside this process's own (as children of its cgroup), filled with the sandbox's pid before
the tool's code starts, emptied by killing every task in them, then removed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class CgroupLayout:
    """Where run cgroups go: one parent directory per controller (one for v2)."""

    version: int
    parents: dict[str, Path]  # controller ("memory", "pids") -> parent directory

    def describe(self) -> str:
        where = ", ".join(f"{c}: {p}" for c, p in sorted(self.parents.items()))
        return f"cgroup v{self.version} ({where})"


def _own_cgroups() -> dict[str, str]:
    """Controller (or "" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    found: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                found[controller] = path
    return found


def _writable_parent(path: Path, needs: tuple[str, ...] = ()) -> bool:
    """Whether a child cgroup can be made under ``path`` and has the files ``needs``."""
    probe = path / f"toolrun-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
    except OSError:
        return False
    try:
        return all((probe / name).exists() for name in needs)
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


def detect_layout() -> CgroupLayout | None:
    """The cgroup layout runs can use, or None when no memory+pids cgroup is writable."""
    own = _own_cgroups()
    v1: dict[str, Path] = {}
    for controller in ("memory", "pids"):
        if controller in own and (CGROUP_ROOT / controller / "cgroup.procs").exists():
            parent = CGROUP_ROOT / controller / own[controller].lstrip("/")
            if _writable_parent(parent):
                v1[controller] = parent
    if len(v1) == 2:
        return CgroupLayout(1, v1)
    unified = CGROUP_ROOT if (CGROUP_ROOT / "cgroup.controllers").exists() else None
    if unified is None and (CGROUP_ROOT / "unified" / "cgroup.controllers").exists():
        unified = CGROUP_ROOT / "unified"
    if unified is not None and "" in own:
        parent = unified / own[""].lstrip("/")
        try:
            available = (parent / "cgroup.controllers").read_text().split()
        except OSError:
            available = []
        # Children get memory.max/pids.max only where the parent delegates both controllers
        # (cgroup.subtree_control); a cgroup that holds processes cannot ("no internal
        # processes"), so this is typically a delegated service cgroup.
        if {"memory", "pids"} <= set(available) and _writable_parent(
            parent, ("memory.max", "pids.max")
        ):
            return CgroupLayout(2, {"memory": parent, "pids": parent})
    return None


@dataclass
class RunCgroup:
    """The cgroup(s) of one run; see the module docstring."""

    layout: CgroupLayout
    memory_bytes: int
    pids: int
    name: str = field(default_factory=lambda: f"toolrun-{uuid.uuid4().hex[:12]}")
    dirs: list[Path] = field(default_factory=list)

    def create(self) -> None:
        if self.layout.version == 2:
            path = self.layout.parents["memory"] / self.name
            path.mkdir()
            self.dirs.append(path)
            _write(path / "memory.max", self.memory_bytes)
            _write(path / "memory.swap.max", 0, optional=True)
            _write(path / "pids.max", self.pids)
            return
        memory = self.layout.parents["memory"] / self.name
        pids = self.layout.parents["pids"] / self.name
        memory.mkdir()
        self.dirs.append(memory)
        pids.mkdir()
        self.dirs.append(pids)
        _write(memory / "memory.limit_in_bytes", self.memory_bytes)
        _write(memory / "memory.memsw.limit_in_bytes", self.memory_bytes, optional=True)
        _write(pids / "pids.max", self.pids)

    def add(self, pid: int) -> None:
        for path in self.dirs:
            _write(path / "cgroup.procs", pid)

    def tasks(self) -> set[int]:
        found: set[int] = set()
        for path in self.dirs:
            with contextlib.suppress(OSError):
                found.update(int(x) for x in (path / "cgroup.procs").read_text().split())
        return found

    def kill_all(self) -> set[int]:
        """SIGKILL every task; returns the ones that were there."""
        if self.layout.version == 2 and self.dirs:
            with contextlib.suppress(OSError):
                _write(self.dirs[0] / "cgroup.kill", 1)
        tasks = self.tasks()
        for pid in tasks:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        return tasks

    def out_of_memory(self) -> bool:
        """Whether the memory limit was hit during the run."""
        if not self.dirs:
            return False
        try:
            if self.layout.version == 2:
                events = (self.dirs[0] / "memory.events").read_text().split()
                counts = dict(zip(events[::2], events[1::2], strict=False))
                return int(counts.get("oom_kill", "0")) > 0 or int(counts.get("max", "0")) > 0
            control = (self.dirs[0] / "memory.oom_control").read_text().split()
            counts = dict(zip(control[::2], control[1::2], strict=False))
            return int(counts.get("oom_kill", "0")) > 0
        except (OSError, ValueError):
            return False

    def remove(self) -> bool:
        """Remove the (empty) directories; False if one is still busy."""
        ok = True
        for path in reversed(self.dirs):
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                ok = False
        if ok:
            self.dirs.clear()
        return ok


def _write(path: Path, value: int, *, optional: bool = False) -> None:
    try:
        path.write_text(str(value))
    except OSError:
        if not optional:
            raise
