"""The sandbox's seccomp filter, compiled to classic BPF with libseccomp (through ctypes).

bubblewrap loads the program (``bwrap --seccomp FD``) just before it executes the sandboxed
interpreter, so everything the tool's code does is filtered. The filter allows by default and
refuses (``EPERM``) the kernel interfaces that a tool never needs and that are the usual
stepping stones out of a namespace sandbox: ptrace and cross-process memory access, new
namespaces and mounts, BPF, io_uring, userfaultfd, perf, keyrings, kernel modules, and sockets
of any family but ``AF_UNIX`` (plus ``AF_INET``/``AF_INET6`` when the tool's policy asks for
``network: loopback``, which in the sandbox's own network namespace reaches only itself).
Syscalls of a foreign ABI (x32, i386) kill the process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
from dataclasses import dataclass

_ACT_ALLOW = 0x7FFF0000
_ACT_KILL_PROCESS = 0x80000000
_FLTATR_ACT_BADARCH = 2
_CMP_NE, _CMP_EQ, _CMP_GE, _CMP_MASKED_EQ = 1, 4, 5, 7


def _act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


# Refused outright. Names the running kernel's ABI does not have are skipped.
DENIED_SYSCALLS = (
    # other processes' memory and execution
    "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd", "kcmp",
    # namespaces, mounts, roots
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    # kernel attack surface a tool has no use for
    "bpf", "userfaultfd", "perf_event_open", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "keyctl", "add_key", "request_key", "name_to_handle_at",
    "open_by_handle_at", "lookup_dcookie", "syslog", "fanotify_init",
    # the machine itself
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "settimeofday", "clock_settime",
    "clock_adjtime", "adjtimex", "sethostname", "setdomainname", "iopl", "ioperm", "vhangup",
    "uselib", "personality", "modify_ldt", "sysfs", "ustat", "_sysctl", "nfsservctl",
    # NUMA placement of other processes' or the machine's memory
    "mbind", "set_mempolicy", "migrate_pages", "move_pages",
)  # fmt: skip

# clone() flags that create namespaces; clone3() passes flags in memory, which seccomp cannot
# read, so it is refused with ENOSYS and the C library falls back to clone().
_CLONE_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
    0x00000080,  # CLONE_NEWTIME
)
_AF_UNIX, _AF_INET, _AF_INET6, _AF_MAX = 1, 2, 10, 64
_TIOCSTI, _TIOCLINUX, _TIOCSETD = 0x5412, 0x541C, 0x5423


class SeccompUnavailable(RuntimeError):
    """libseccomp is missing or refused to build the filter; the message says why."""


@dataclass(frozen=True)
class _Lib:
    handle: ctypes.CDLL


@functools.cache
def _lib() -> _Lib:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        handle = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise SeccompUnavailable(
            f"libseccomp is not installed ({exc}); install it (Debian: libseccomp2)"
        ) from None
    handle.seccomp_init.restype = ctypes.c_void_p
    handle.seccomp_init.argtypes = [ctypes.c_uint32]
    handle.seccomp_release.argtypes = [ctypes.c_void_p]
    handle.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    handle.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    handle.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    handle.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return _Lib(handle)


@functools.cache
def build_filter(allow_inet: bool) -> bytes:
    """The BPF program (raw ``struct sock_filter`` array) for ``bwrap --seccomp``."""
    lib = _lib().handle
    ctx = lib.seccomp_init(_ACT_ALLOW)
    if not ctx:
        raise SeccompUnavailable("seccomp_init failed")
    try:
        _check(lib.seccomp_attr_set(ctx, _FLTATR_ACT_BADARCH, _ACT_KILL_PROCESS), "badarch")
        eperm = _act_errno(errno.EPERM)

        def rule(name: str, action: int, *cmps: tuple[int, int, int, int]) -> None:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number < 0:
                return  # not a syscall of this ABI
            array = (_ArgCmp * max(len(cmps), 1))(*[_ArgCmp(*c) for c in cmps])
            _check(lib.seccomp_rule_add_array(ctx, action, number, len(cmps), array), name)

        for name in DENIED_SYSCALLS:
            rule(name, eperm)
        rule("clone3", _act_errno(errno.ENOSYS))
        for flag in _CLONE_NAMESPACE_FLAGS:
            rule("clone", eperm, (0, _CMP_MASKED_EQ, flag, flag))
        # typing into a terminal, and line disciplines (a history of kernel bugs)
        for request in (_TIOCSTI, _TIOCLINUX, _TIOCSETD):
            rule("ioctl", eperm, (1, _CMP_MASKED_EQ, 0xFFFFFFFF, request))
        allowed = {_AF_UNIX, _AF_INET, _AF_INET6} if allow_inet else {_AF_UNIX}
        for family in range(_AF_MAX):
            if family not in allowed:
                rule("socket", eperm, (0, _CMP_EQ, family, 0))
        rule("socket", eperm, (0, _CMP_GE, _AF_MAX, 0))
        return _export(lib, ctx)
    finally:
        lib.seccomp_release(ctx)


def _check(result: int, what: str) -> None:
    if result < 0:
        raise SeccompUnavailable(f"libseccomp refused {what}: {os.strerror(-result)}")


def _export(lib: ctypes.CDLL, ctx: int) -> bytes:
    fd = os.memfd_create("toolrun-seccomp", os.MFD_CLOEXEC)
    try:
        _check(lib.seccomp_export_bpf(ctx, fd), "export")
        size = os.lseek(fd, 0, os.SEEK_END)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)
