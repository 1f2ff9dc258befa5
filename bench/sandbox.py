"""Cost of isolation: one call of the same function in each tier, in one run.

* ``process``: a Python tool in a warm worker process (the default tier; the baseline).
* ``sandbox``: the same function as a ``code`` tool in a fresh bubblewrap sandbox (namespaces,
  seccomp, Landlock, rlimits, a cgroup), which is what untrusted code gets.
* ``unsandboxed``: the operator's opt-in fallback (a fresh child process, rlimits, Landlock).
* ``bare interpreter``: ``python3 -I -S -c pass`` started and reaped, the floor of any tier
  that starts a fresh process per call.

Calls go through :class:`toolrun.execution.runner.ToolRunner` (no HTTP), at concurrency 1
and 4. A last row measures the runner's own peak RSS growth while it drains and discards a
1 GiB stdout flood from sandboxed code (the output cap keeps it bounded).
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from toolrun.config import Settings
from toolrun.execution.pool import WorkerPool
from toolrun.execution.runner import ToolRunner
from toolrun.registry.runtimes import CodeRuntime, PythonRuntime
from toolrun.registry.tool import Tool
from toolrun.sandbox.probe import probe_with

SOURCE = "def main(value):\n    return {'value': value + 1}\n"
FLOOD = (
    "import sys\n"
    "def main():\n"
    "    for _ in range(1024):\n"
    "        sys.stdout.buffer.write(b'A' * (1 << 20))\n"
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def measure(
    call: Callable[[], Awaitable[object]], count: int, concurrency: int
) -> list[float]:
    latencies: list[float] = []
    remaining = count

    async def lane() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return latencies


async def bare_interpreter(python: str) -> None:
    process = await asyncio.create_subprocess_exec(python, "-I", "-S", "-c", "pass")
    await process.wait()


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run(quick: bool) -> list[tuple[str, int, list[float]]]:
    count = 30 if quick else 200
    rows: list[tuple[str, int, list[float]]] = []
    with tempfile.TemporaryDirectory() as data:
        strong = Settings(data_dir=Path(data), workers=2)
        weak = Settings(
            data_dir=Path(data), sandbox={"bwrap": "no-such-bwrap", "fallback": "unsandboxed"}
        )
        report = probe_with(strong.sandbox)
        if report.host is None or report.mode != "bubblewrap":
            raise SystemExit(f"no sandbox on this machine: {report.reason}")
        runner = ToolRunner(strong, WorkerPool(2))
        weak_runner = ToolRunner(weak, WorkerPool(1))
        await runner.start()
        await weak_runner.start()
        try:
            process_tool = Tool(
                name="inc_process",
                runtime=PythonRuntime(target="toolrun.demo.functions:increment"),
            )
            code_tool = Tool(name="inc_code", runtime=CodeRuntime(source=SOURCE))
            cases: list[tuple[str, Callable[[], Awaitable[object]]]] = [
                ("process (baseline)", lambda: runner.run(process_tool, {"value": 1})),
                ("sandbox (bubblewrap)", lambda: runner.run(code_tool, {"value": 1})),
                ("unsandboxed fallback", lambda: weak_runner.run(code_tool, {"value": 1})),
                ("bare interpreter start", lambda: bare_interpreter(report.host.python)),
            ]
            for name, call in cases:
                await measure(call, 5, 1)  # warm up
                for concurrency in (1, 4):
                    rows.append((name, concurrency, await measure(call, count, concurrency)))
            flood_tool = Tool(name="flood", runtime=CodeRuntime(source=FLOOD))
            before = rss_mib()
            started = time.perf_counter()
            response = await runner.run(flood_tool, {})
            elapsed = (time.perf_counter() - started) * 1000
            assert response.is_error and "output limit" in response.text, response.text
            rows.append((f"1 GiB flood (RSS +{rss_mib() - before:.1f} MiB)", 1, [elapsed]))
        finally:
            await runner.close()
            await weak_runner.close()
    return rows


def main(*, quick: bool = False) -> None:
    rows = asyncio.run(run(quick))
    baseline = {c: statistics.median(lat) for name, c, lat in rows if name.startswith("process")}
    print("\nisolation tiers: one call of `value + 1` (ToolRunner, no HTTP)")
    print(f"{'tier':34} {'conc':>4} {'calls':>6} {'p50 ms':>8} {'p99 ms':>8} {'x process':>9}")
    for name, concurrency, latencies in rows:
        p50 = statistics.median(latencies)
        ratio = p50 / baseline[concurrency] if concurrency in baseline else float("nan")
        print(
            f"{name:34} {concurrency:>4} {len(latencies):>6} {p50:>8.2f} "
            f"{percentile(latencies, 0.99):>8.2f} {ratio:>9.1f}"
        )


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
