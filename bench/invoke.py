"""Invocation latency: toolrun's REST and WebSocket paths beside a bare FastAPI floor.

Both servers run as separate processes under the same uvicorn settings; one asyncio client
drives each at concurrency 1 and 32. Targets (issue 2): a trusted inline tool's REST p50 at
most 2x the floor's; a worker-process tool at most 3 ms p50 above the floor.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import websockets

from bench.http_client import Connection

ROOT = Path(__file__).resolve().parents[1]
INLINE = "bench_increment_inline"
PROCESS = "bench_increment_process"


@dataclass
class Result:
    name: str
    concurrency: int
    latencies_ms: list[float]
    wall_s: float

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.wall_s


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def process(args: list[str], ready_url: str, env: dict[str, str] | None = None) -> Iterator[None]:
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(ready_url)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def drive(
    call: Callable[[int], Awaitable[None]], total: int, concurrency: int
) -> tuple[list[float], float]:
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            start = time.perf_counter()
            await call(i)
            latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - start


async def bench_rest(
    url: str, total: int, concurrency: int, warmup: int
) -> tuple[list[float], float]:
    """Each of ``concurrency`` tasks keeps one connection and posts one call after another."""
    connections = [Connection(url) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c in connections))
    free: asyncio.Queue[Connection] = asyncio.Queue()
    for connection in connections:
        free.put_nowait(connection)

    async def call(i: int) -> None:
        connection = await free.get()
        try:
            status, body = await connection.post_json({"value": i})
        finally:
            free.put_nowait(connection)
        value = body.get("structuredContent", body)
        assert status == 200 and value == {"result": i + 1}, body

    try:
        await drive(call, warmup, concurrency)
        return await drive(call, total, concurrency)
    finally:
        await asyncio.gather(*(c.close() for c in connections))


async def bench_ws(
    url: str, tool_id: str, total: int, concurrency: int, warmup: int
) -> tuple[list[float], float]:
    async def call(i: int) -> None:
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"tool_id": tool_id, "input_data": {"value": i}}))
            accepted = json.loads(await ws.recv())
            assert accepted["success"], accepted
            done = json.loads(await ws.recv())
            assert done["output"] == {"result": i + 1}, done

    await drive(call, warmup, concurrency)
    return await drive(call, total, concurrency)


def register_tools(data_dir: str) -> None:
    """Register the two benchmark tools the operator's way (trust is never granted over
    REST): ``toolrun register`` on the server's data directory, before it starts."""
    specs = []
    for name, isolation in ((INLINE, "inline"), (PROCESS, "process")):
        specs.append(
            {
                "name": name,
                "input_schema": {
                    "type": "object",
                    "properties": {"value": {"type": "integer"}},
                    "required": ["value"],
                },
                "runtime": {"kind": "python", "target": "toolrun.demo.functions:increment"},
                "policy": {"isolation": isolation},
            }
        )
    path = Path(data_dir) / "bench-tools.json"
    path.write_text(json.dumps(specs))
    subprocess.run(
        [sys.executable, "-m", "toolrun.cli.main", "register", str(path), "--data-dir", data_dir],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def print_table(results: list[Result], floors: dict[tuple[str, int], Result]) -> None:
    header = (
        f"{'path':<34}{'conc':>5}{'p50 ms':>9}{'p99 ms':>9}{'calls/s':>9}  {'p50 vs floor':>16}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        kind = "ws" if r.name.startswith("ws") else "rest"
        floor = floors.get((kind, r.concurrency))
        if floor is None or floor is r:
            versus = "(floor)"
        else:
            versus = f"x{r.p50 / floor.p50:.2f} / +{r.p50 - floor.p50:.2f}ms"
        print(
            f"{r.name:<34}{r.concurrency:>5}{r.p50:>9.2f}{r.p99:>9.2f}{r.rate:>9.0f}  {versus:>16}"
        )


def main(*, quick: bool = False) -> None:
    total = 300 if quick else 3000
    warmup = 50 if quick else 300
    floor_port, port = free_port(), free_port()
    uvicorn_args = ["--log-level", "warning", "--no-access-log"]
    results: list[Result] = []
    floors: dict[tuple[str, int], Result] = {}
    with tempfile.TemporaryDirectory() as data:
        floor_cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.floor_app:app",
            "--port",
            str(floor_port),
            *uvicorn_args,
        ]
        toolrun_cmd = [
            sys.executable,
            "-m",
            "toolrun.cli.main",
            "serve",
            "--port",
            str(port),
            "--ws-port",
            str(port),
            "--data-dir",
            data,
            "--log-level",
            "warning",
        ]
        register_tools(data)
        with (
            process(floor_cmd, f"http://127.0.0.1:{floor_port}/docs"),
            process(toolrun_cmd, f"http://127.0.0.1:{port}/health", env={"TOOLRUN_WORKERS": "2"}),
        ):
            base = f"http://127.0.0.1:{port}"
            floor_url, ws = f"http://127.0.0.1:{floor_port}", f"ws://127.0.0.1:{port}/tool"
            rows = [  # (kind, label, REST url or WebSocket url, tool id)
                ("rest", "rest floor (bare FastAPI)", f"{floor_url}/floor", ""),
                ("rest", "rest invoke, inline (trusted)", f"{base}/tools/{INLINE}/invoke", ""),
                ("rest", "rest invoke, worker process", f"{base}/tools/{PROCESS}/invoke", ""),
                ("ws", "ws floor (bare FastAPI)", f"ws://127.0.0.1:{floor_port}/floor", ""),
                ("ws", "ws /tool, inline (trusted)", ws, INLINE),
                ("ws", "ws /tool, worker process", ws, PROCESS),
            ]
            for concurrency in (1, 32):
                for kind, name, url, tool_id in rows:
                    if kind == "rest":
                        run = bench_rest(url, total, concurrency, warmup)
                    else:
                        run = bench_ws(url, tool_id, total // 3, concurrency, warmup // 3)
                    latencies, wall = asyncio.run(run)
                    result = Result(name, concurrency, latencies, wall)
                    results.append(result)
                    if "floor" in name:
                        floors[(kind, concurrency)] = result
    print(
        f"\ninvoke benchmark: {total} REST / {total // 3} WebSocket calls per row, "
        f"{os.cpu_count()} cores\n"
    )
    print_table(results, floors)
    inline = next(
        r for r in results if r.name.startswith("rest invoke, inline") and r.concurrency == 1
    )
    worker = next(
        r for r in results if r.name.startswith("rest invoke, worker") and r.concurrency == 1
    )
    floor = floors[("rest", 1)]
    print()
    print(
        f"target inline REST p50 <= 2x floor:        x{inline.p50 / floor.p50:.2f}  "
        f"{'PASS' if inline.p50 <= 2 * floor.p50 else 'MISS'}"
    )
    print(
        f"target worker REST p50 <= floor + 3 ms:    +{worker.p50 - floor.p50:.2f} ms  "
        f"{'PASS' if worker.p50 - floor.p50 <= 3 else 'MISS'}"
    )


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
