"""Overhead of composition: a code action's inner call and a chain's step, in one run.

Everything runs in one process over the embedded executor (no HTTP), with the demo tool
``increment`` (a Python tool in a warm worker process):

* ``executor.invoke``: one call as a job: the baseline every composed call pays too.
* ``code action, per inner call``: one action making N calls in a loop, minus an action that
  makes none, divided by N: what a call from inside the sandbox adds over ``invoke`` is the
  frame to the host and back.
* ``chain, per step``: a chain of N sequential steps, invoked once, divided by N.

The in-process function call is printed as the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from toolrun.config import Settings
from toolrun.demo.functions import increment
from toolrun.execution.scripts import ScriptRunner
from toolrun.platform import Platform
from toolrun.registry.runtimes import ChainRuntime
from toolrun.registry.tool import Tool
from toolrun.sandbox.probe import probe_with


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def timed(runs: int, call: object) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()  # type: ignore[operator]
        out.append((time.perf_counter() - started) * 1000)
    return out


async def run(quick: bool) -> list[tuple[str, float, float, str]]:
    calls = 10 if quick else 50
    runs = 5 if quick else 15
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(data_dir=Path(data), demo=True, workers=2, ws_port=None)
        platform = Platform(settings)
        await platform.start()
        try:
            rows: list[tuple[str, float, float, str]] = []
            floor = []
            for _ in range(1000):
                started = time.perf_counter()
                increment(1)
                floor.append((time.perf_counter() - started) * 1000)
            rows.append(("function call, in process", statistics.median(floor), 0.0, "floor"))

            async def invoke() -> None:
                job = await platform.executor.invoke("increment", {"value": 1})
                assert job.result is not None and not job.result.is_error

            await timed(20, invoke)  # warm the workers
            direct = await timed(calls * 4, invoke)
            base = statistics.median(direct)
            rows.append(("executor.invoke (a job)", base, percentile(direct, 0.99), "baseline"))

            if probe_with(settings.sandbox).available:
                runner = ScriptRunner(settings, platform.executor.invoke)
                tool = platform.tools.get("increment")
                loop = f"from tools import increment\nfor i in range({calls}):\n    increment(i)\n"

                async def empty() -> None:
                    result = await runner.run(
                        "pass\n", {"tools": {"increment": tool}}, timeout_s=60
                    )
                    assert result.ok, result.error

                async def busy() -> None:
                    result = await runner.run(loop, {"tools": {"increment": tool}}, timeout_s=60)
                    assert result.ok and len(result.calls) == calls, result.error

                idle = statistics.median(await timed(runs, empty))
                per_call = [(t - idle) / calls for t in await timed(runs, busy)]
                p50 = statistics.median(per_call)
                rows.append(
                    (
                        "code action, per inner call",
                        p50,
                        max(per_call),
                        f"+{p50 - base:.2f} ms over invoke (action start {idle:.0f} ms)",
                    )
                )
            else:
                rows.append(
                    ("code action, per inner call", float("nan"), float("nan"), "no sandbox")
                )

            steps = [
                {"id": f"s{i}", "tool": "increment", "arguments": {"value": i}}
                for i in range(calls)
            ]
            for i in range(1, calls):
                steps[i]["after"] = [f"s{i - 1}"]
            chain = Tool(
                name="bench_chain",
                runtime=ChainRuntime.model_validate({"kind": "chain", "steps": steps}),
            )
            platform.tools.create(chain)

            async def chained() -> None:
                job = await platform.executor.invoke("bench_chain", {})
                assert job.result is not None and not job.result.is_error, job.result

            per_step = [t / calls for t in await timed(runs, chained)]
            p50 = statistics.median(per_step)
            rows.append(("chain, per step", p50, max(per_step), f"{p50 - base:+.2f} ms vs invoke"))
            return rows
        finally:
            await platform.close()


def main(quick: bool = False) -> None:
    rows = asyncio.run(run(quick))
    print("\n## composition overhead (bench/actions.py)\n")
    print("| call | p50 ms | p99/max ms | note |")
    print("| --- | --- | --- | --- |")
    for name, p50, p99, note in rows:
        print(f"| {name} | {p50:.4f} | {p99:.4f} | {note} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    main(quick=parser.parse_args().quick)
