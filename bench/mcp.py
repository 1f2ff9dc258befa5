"""MCP overhead: a ``tools/call`` through toolrun's ``/mcp`` beside direct calls of the same
tool, in one run on one server.

Rows, per tool tier (trusted inline, worker process): the function called in this process
(no server at all); ``POST /tools/{id}/invoke`` on the server (the direct REST call, through
a minimal keep-alive client); ``tools/call`` to ``/mcp`` of the same server as a bare JSON-RPC
POST through the same client (toolrun's MCP serving cost alone); and ``tools/call`` with the
official ``mcp`` client (what an MCP host pays, the SDK's client side included).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.http_client import Connection
from bench.invoke import INLINE, PROCESS, Result, drive, free_port, process, register_tools
from toolrun.demo.functions import increment

PROTOCOL = "2026-07-28"
ROUNDS = 4
CLIENT_META = {
    "io.modelcontextprotocol/protocolVersion": PROTOCOL,
    "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


class McpConnection(Connection):
    """The keep-alive client, posting JSON-RPC ``tools/call`` requests to ``/mcp``."""

    async def call_tool(self, name: str, arguments: dict[str, Any], request_id: int) -> Any:
        assert self.reader is not None and self.writer is not None
        body = {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments, "_meta": CLIENT_META},
        }
        payload = json.dumps(body).encode()
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            f"MCP-Protocol-Version: {PROTOCOL}\r\nMcp-Method: tools/call\r\nMcp-Name: {name}\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        self.writer.write(head.encode() + payload)
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            key, _, value = line.decode("latin-1").partition(":")
            if key.lower() == "content-length":
                length = int(value)
        reply = json.loads(await self.reader.readexactly(length))
        assert status == 200 and "result" in reply, reply
        return reply["result"]


async def pooled(
    connections: list[Connection], call: Callable[[Any, int], Awaitable[None]]
) -> Callable[[int], Awaitable[None]]:
    """``call(connection, i)`` on whichever of ``connections`` is free."""
    await asyncio.gather(*(c.open() for c in connections))
    free: asyncio.Queue[Connection] = asyncio.Queue()
    for connection in connections:
        free.put_nowait(connection)

    async def one(i: int) -> None:
        connection = await free.get()
        try:
            await call(connection, i)
        finally:
            free.put_nowait(connection)

    return one


async def bench_rest(base: str, tool: str, total: int, conc: int, warmup: int) -> Result:
    connections = [Connection(f"{base}/tools/{tool}/invoke") for _ in range(conc)]

    async def call(connection: Connection, i: int) -> None:
        status, body = await connection.post_json({"value": i})
        assert status == 200 and body["structuredContent"] == {"result": i + 1}, body

    one = await pooled(list(connections), call)
    try:
        await drive(one, warmup, conc)
        return Result(f"rest invoke, {label(tool)}", conc, *await drive(one, total, conc))
    finally:
        await asyncio.gather(*(c.close() for c in connections))


async def bench_mcp_raw(base: str, tool: str, total: int, conc: int, warmup: int) -> Result:
    connections = [McpConnection(f"{base}/mcp") for _ in range(conc)]

    async def call(connection: Any, i: int) -> None:
        result = await connection.call_tool(tool, {"value": i}, i)
        assert result["structuredContent"] == {"result": i + 1}, result

    one = await pooled(list(connections), call)
    try:
        await drive(one, warmup, conc)
        return Result(f"mcp tools/call raw, {label(tool)}", conc, *await drive(one, total, conc))
    finally:
        await asyncio.gather(*(c.close() for c in connections))


async def bench_mcp_sdk(base: str, tool: str, total: int, conc: int, warmup: int) -> Result:
    from mcp import Client

    async with Client(f"{base}/mcp") as client:
        await client.list_tools()

        async def one(i: int) -> None:
            result = await client.call_tool(tool, {"value": i})
            assert result.structured_content == {"result": i + 1}, result

        await drive(one, warmup, conc)
        return Result(f"mcp tools/call sdk, {label(tool)}", conc, *await drive(one, total, conc))


def interleaved(base: str, tool: str, total: int, conc: int, warmup: int) -> list[Result]:
    """The REST, raw MCP and SDK rows of one tool, measured in ``ROUNDS`` rounds whose order
    rotates, so drift (and the job writes one row leaves behind) falls on each alike."""
    benches = (bench_rest, bench_mcp_raw, bench_mcp_sdk)
    parts: dict[int, list[Result]] = {i: [] for i in range(len(benches))}
    for round_ in range(ROUNDS):
        for offset in range(len(benches)):
            i = (round_ + offset) % len(benches)
            run = benches[i](base, tool, total // ROUNDS, conc, warmup // ROUNDS)
            parts[i].append(asyncio.run(run))
    return [
        Result(
            found[0].name,
            conc,
            [ms for part in found for ms in part.latencies_ms],
            sum(part.wall_s for part in found),
        )
        for found in parts.values()
    ]


def bench_function(total: int) -> Result:
    latencies = []
    start = time.perf_counter()
    for i in range(total):
        began = time.perf_counter()
        assert increment(i) == {"result": i + 1}
        latencies.append((time.perf_counter() - began) * 1000)
    return Result("function, in process", 1, latencies, time.perf_counter() - start)


def label(tool: str) -> str:
    return "inline" if tool == INLINE else "worker"


def print_table(results: list[Result], rest: dict[tuple[str, int], Result]) -> None:
    header = f"{'path':<34}{'conc':>5}{'p50 ms':>9}{'p99 ms':>9}{'calls/s':>9}  {'p50 vs rest':>12}"
    print(header)
    print("-" * len(header))
    for r in results:
        tier = r.name.rsplit(", ", 1)[-1]
        base = rest.get((tier, r.concurrency))
        versus = "" if base is None or base is r else f"{r.p50 - base.p50:+.2f}ms"
        print(
            f"{r.name:<34}{r.concurrency:>5}{r.p50:>9.2f}{r.p99:>9.2f}{r.rate:>9.0f}  {versus:>12}"
        )


def main(*, quick: bool = False) -> None:
    total = 300 if quick else 2000
    warmup = 50 if quick else 200
    port = free_port()
    results = [bench_function(total * 10)]
    rest: dict[tuple[str, int], Result] = {}
    with tempfile.TemporaryDirectory() as data:
        register_tools(data)
        command = [sys.executable, "-m", "toolrun.cli.main", "serve", "--port", str(port)]
        command += ["--ws-port", str(port), "--data-dir", data, "--log-level", "warning"]
        env = {"TOOLRUN_WORKERS": "2", "TOOLRUN_RETRIEVAL_EMBEDDER": "none"}
        with process(command, f"http://127.0.0.1:{port}/health", env=env):
            base = f"http://127.0.0.1:{port}"
            for conc in (1, 8):
                for tool in (INLINE, PROCESS):
                    rows = interleaved(base, tool, total, conc, warmup)
                    results.extend(rows)
                    rest[(label(tool), conc)] = rows[0]
    print(f"\nMCP benchmark: {total} calls per row in {ROUNDS} rounds, {os.cpu_count()} cores\n")
    print_table(results, rest)
    print()
    for tool in (INLINE, PROCESS):
        row = {
            r.name.split(",")[0]: r for r in results if r.concurrency == 1 and label(tool) in r.name
        }
        direct, raw, sdk = row["rest invoke"], row["mcp tools/call raw"], row["mcp tools/call sdk"]
        print(
            f"{label(tool):<7} conc 1: MCP tools/call over REST invoke p50 "
            f"{raw.p50 - direct.p50:+.2f} ms (server side), "
            f"{sdk.p50 - direct.p50:+.2f} ms with the mcp client; "
            f"function alone {statistics.median(results[0].latencies_ms) * 1000:.1f} us"
        )


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
