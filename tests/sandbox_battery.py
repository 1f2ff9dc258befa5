"""Runs ../shared/sandbox_battery/cases.py against the real sandbox and checks every verdict.

The host side of the battery: a host directory and marker, a fake service database, a
loopback and a Unix-socket listener, a canary process, a secret in the environment, and the
host checks of the battery's README. Used by ``tests/test_sandbox_battery.py`` and runnable on
its own (``python tests/sandbox_battery.py``) to print the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import importlib.util
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from toolrun.sandbox.launcher import (
    STDERR_KEEP_BYTES,
    Sandbox,
    SandboxLimits,
    SandboxOutcome,
    SandboxRequest,
)

BATTERY_DIR = Path(__file__).resolve().parents[2] / "shared" / "sandbox_battery"
# The policy the battery's thresholds assume, with shorter clocks to keep the suite quick.
BATTERY_LIMITS = SandboxLimits(wall_s=4.0, cpu_s=3.0, memory_mb=512, pids=64, scratch_mb=64)
CONCURRENCY = 3
RUN_DEADLINE_S = 60  # far beyond any case's max_wall_s: only a runner that hangs reaches it


def load_cases() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sandbox_battery_cases", BATTERY_DIR / "cases.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Verdict:
    case_id: str
    status: str
    wall_s: float
    failures: list[str] = field(default_factory=list)
    weak: list[str] = field(default_factory=list)
    reason: str = ""

    @property
    def contained(self) -> bool:
        return not self.failures


class BatteryHost:
    """The listeners, files and processes the cases aim at; a context manager."""

    def __init__(self, cases: ModuleType) -> None:
        self.cases = cases
        self.nonce = secrets.token_hex(6)
        self.tmp = Path(tempfile.mkdtemp(prefix="toolrun-battery-"))
        self.host_dir = self.tmp / "host"
        self.marker = self.host_dir / f"marker_{self.nonce}"
        self.service_db = self.tmp / "service.db"
        self.unix_path = self.tmp / "svc.sock"

    def __enter__(self) -> BatteryHost:
        self.tmp.chmod(0o755)
        self.host_dir.mkdir()
        self.host_dir.chmod(0o777)
        self.service_db.write_text(f"token={self.cases.SERVICE_DB_TOKEN}\n")
        self.service_db.chmod(0o666)
        self.loopback = socket.socket()
        self.loopback.bind(("127.0.0.1", 0))
        self.loopback.listen(16)
        self.loopback.setblocking(False)
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind(str(self.unix_path))
        self.unix_path.chmod(0o777)
        self.unix.listen(16)
        self.unix.setblocking(False)
        self.canary = subprocess.Popen(["sleep", "3600"])
        os.environ["TOOLRUN_BATTERY_SECRET"] = self.cases.SECRET_ENV_VALUE
        return self

    def __exit__(self, *exc: object) -> None:
        os.environ.pop("TOOLRUN_BATTERY_SECRET", None)
        self.canary.kill()
        self.canary.wait()
        self.loopback.close()
        self.unix.close()
        subprocess.run(["rm", "-rf", str(self.tmp)], check=False)

    def code_for(self, case: dict[str, Any]) -> str:
        code: str = case["code"]
        tokens = {
            "__HOST_DIR__": str(self.host_dir),
            "__HOST_MARKER__": str(self.marker),
            "__SERVICE_DB__": str(self.service_db),
            "__LOOPBACK_PORT__": str(self.loopback.getsockname()[1]),
            "__UNIX_SOCK__": str(self.unix_path),
            "__CANARY_PID__": str(self.canary.pid),
            "__RUNNER_PID__": str(os.getpid()),
            "__NONCE__": self.nonce,
        }
        for token, value in tokens.items():
            code = code.replace(token, value)
        return code

    def accepted(self, listener: socket.socket) -> bool:
        try:
            connection, _ = listener.accept()
        except BlockingIOError:
            return False
        connection.close()
        return True

    def leftovers(self) -> list[str]:
        patterns = [
            str(self.marker),
            f"{self.host_dir}/*{self.nonce}*",
            f"/tmp/*{self.nonce}*",
            f"/var/tmp/*{self.nonce}*",
            f"/dev/shm/*{self.nonce}*",
        ]
        return sorted({hit for p in patterns for hit in glob.glob(p)})


def processes_of_uid(uid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("Uid:"):
                    if int(line.split()[1]) == uid:
                        found.append(int(entry.name))
                    break
    return found


def describe(pids: list[int]) -> str:
    described = []
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status if ":" in line)
        described.append(
            f"pid {pid} {fields.get('Name', '?').strip()} state {fields.get('State', '?').strip()}"
            f" ppid {fields.get('PPid', '?').strip()}"
        )
    return ", ".join(described) or "processes (gone by now)"


def core_files(since: float, places: list[Path]) -> list[str]:
    hits = []
    for place in places:
        for path in glob.glob(f"{place}/core*"):
            with contextlib.suppress(OSError):
                if os.stat(path).st_mtime >= since:
                    hits.append(path)
    return hits


def judge(
    host: BatteryHost, case: dict[str, Any], outcome: SandboxOutcome, started: float
) -> Verdict:
    verdict = Verdict(case["id"], outcome.status, outcome.wall_s, reason=outcome.reason)
    text = (outcome.stdout + b"\n" + outcome.stderr).decode(errors="replace")
    result_text = repr(outcome.result) + repr(outcome.error)
    lines = text.splitlines()
    verdict.failures += [f"printed {line[:160]!r}" for line in lines if line.startswith("ESCAPED:")]
    verdict.weak = [line[:160] for line in lines if line.startswith("WEAK:")]
    expect = case["expect"]
    if expect["status"] is not None and outcome.status not in expect["status"]:
        verdict.failures.append(f"status {outcome.status} not in {expect['status']}")
    if outcome.wall_s > expect["max_wall_s"]:
        verdict.failures.append(f"took {outcome.wall_s:.1f} s > {expect['max_wall_s']} s")
    for check in expect["checks"]:
        failure = _host_check(host, check, outcome, text + result_text, started)
        if failure:
            verdict.failures.append(f"{check}: {failure}")
    return verdict


def _host_check(
    host: BatteryHost, check: str, outcome: SandboxOutcome, seen: str, started: float
) -> str | None:
    cases = host.cases
    if check == "host_marker_absent":
        left = host.leftovers()
        return f"found {left}" if left else None
    if check == "secret_not_in_output":
        return "secret leaked" if cases.SECRET_ENV_VALUE in seen else None
    if check == "db_token_not_in_output":
        return "db token leaked" if cases.SERVICE_DB_TOKEN in seen else None
    if check == "loopback_listener_untouched":
        return "a connection arrived" if host.accepted(host.loopback) else None
    if check == "unix_listener_untouched":
        return "a connection arrived" if host.accepted(host.unix) else None
    if check == "canary_alive":
        return "the canary died" if host.canary.poll() is not None else None
    if check == "no_stray_processes":
        if outcome.uid is None:
            return "cannot tell: the sandbox did not run as a uid of its own"
        left = processes_of_uid(outcome.uid)
        return f"{describe(left)} of uid {outcome.uid} still alive" if left else None
    if check == "output_capped":
        kept = len(outcome.stdout) + len(outcome.stderr)
        cap = BATTERY_LIMITS.output_bytes + STDERR_KEEP_BYTES
        return f"kept {kept} bytes > {cap}" if kept > cap else None
    if check == "no_core_file":
        hits = core_files(started, [host.host_dir, Path.cwd(), Path("/tmp"), Path("/")])
        return f"core files {hits}" if hits else None
    if check == "result_not_forged":
        forged = outcome.has_result or "forged-by-sandboxed-code" in repr(outcome.result)
        return "the forged result was believed" if forged else None
    return None  # no_escape_line is checked for every case


async def run_battery(sandbox: Sandbox, host: BatteryHost) -> list[Verdict]:
    """Every case, a few at a time; the persistence pair runs back to back."""
    cases = host.cases.CASES
    by_id = {c["id"]: c for c in cases}
    groups: list[list[dict[str, Any]]] = []
    for case in cases:
        if case["id"] == "cross_run_persistence_read":
            continue
        if case["id"] == "cross_run_persistence_write":
            groups.append([case, by_id["cross_run_persistence_read"]])
        else:
            groups.append([case])
    verdicts: dict[str, Verdict] = {}
    gate = asyncio.Semaphore(CONCURRENCY)

    async def run_group(group: list[dict[str, Any]]) -> None:
        async with gate:
            for case in group:
                started = time.time()
                source = host.code_for(case) + "\n\ndef main():\n    return None\n"
                request = SandboxRequest(mode="code", limits=BATTERY_LIMITS, source=source)
                try:
                    outcome = await asyncio.wait_for(sandbox.run(request), RUN_DEADLINE_S)
                except TimeoutError:
                    verdicts[case["id"]] = Verdict(
                        case["id"],
                        "hung",
                        time.time() - started,
                        [f"no verdict in {RUN_DEADLINE_S} s"],
                    )
                    continue
                verdicts[case["id"]] = judge(host, case, outcome, started)

    await asyncio.gather(*(run_group(g) for g in groups))
    return [verdicts[c["id"]] for c in cases]


def main() -> int:
    from toolrun.sandbox.probe import probe

    report = probe()
    print(report.summary())
    if not report.available or report.host is None:
        return 2
    cases = load_cases()
    with BatteryHost(cases) as host:
        verdicts = asyncio.run(run_battery(Sandbox(report.host), host))
    print(f"{'case':30} {'status':13} {'wall':>6}  verdict")
    for v in verdicts:
        flag = "contained" if v.contained else "FAILED: " + "; ".join(v.failures)
        weak = f"  ({len(v.weak)} weak)" if v.weak else ""
        print(f"{v.case_id:30} {v.status:13} {v.wall_s:6.2f}  {flag}{weak}")
    contained = sum(v.contained for v in verdicts)
    print(f"contained {contained}/{len(verdicts)}")
    return 0 if contained == len(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
