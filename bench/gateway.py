"""Gateway overhead: the same chat completions sent to an upstream directly and through
``toolrun gateway``, in one run.

``python -m bench.gateway [--quick]``. Three processes on loopback: a minimal
OpenAI-compatible upstream (asyncio, a fixed tiny reply: a native tool call when ``tools`` are
sent, a fenced Python call when the emulation prompt is, else a word; streams as three SSE
chunks), the gateway (``toolrun gateway``, request log on, as shipped) mapping ``native`` and
``emulate`` models to it, and this client (a minimal keep-alive HTTP/1.1 client, one request at
a time). Rows: p50/p99 latency of non-streaming requests, direct and through the gateway in
each mode; and time to first token of streaming requests (first chunk carrying content or a
tool call). Emulated turns are read whole before they stream, so their TTFT is a whole
upstream request. Target: p50 overhead <= 5 ms non-streaming.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from bench.http_client import Connection
from bench.invoke import free_port

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather of a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
MESSAGES = [{"role": "user", "content": "Weather in Paris?"}]
TOKEN = re.compile(rb'"content": "[^"]|"tool_calls"')
TARGET_MS = 5.0


# -- the upstream --------------------------------------------------------------------------------


def _reply(body: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    if body.get("tools"):
        call = {"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}  # fmt: skip
        return None, [call]
    system = body["messages"][0].get("content") or ""
    if "def get_weather" in system:
        return 'Checking.\n```python\nget_weather(city="Paris")\n```', []
    return "ok", []


def _completion(content: str | None, calls: list[dict[str, Any]]) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    body = {"id": "up", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}}  # fmt: skip
    return json.dumps(body).encode()


def _stream(content: str | None, calls: list[dict[str, Any]]) -> list[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        data = {"id": "up", "object": "chat.completion.chunk", "created": 0, "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    deltas = [{"role": "assistant", "content": ""}]
    deltas += [{"tool_calls": [dict(c, index=i)]} for i, c in enumerate(calls)]
    deltas += [{"content": content}] if content else []
    return [*map(chunk, deltas), chunk({}, "tool_calls" if calls else "stop"), b"data: [DONE]\n\n"]


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            found = re.search(rb"(?i)content-length:\s*(\d+)", head)
            if found is None:  # the readiness probe
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                continue
            body = json.loads(await reader.readexactly(int(found.group(1))))
            content, calls = _reply(body)
            if body.get("stream"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Connection: close\r\n\r\n")  # fmt: skip
                for piece in _stream(content, calls):
                    writer.write(piece)
                    await writer.drain()
                break
            payload = _completion(content, calls)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))  # fmt: skip
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _serve_upstream(port: int) -> None:
    server = await asyncio.start_server(_handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


# -- the client ----------------------------------------------------------------------------------


async def _ttft(url: str, body: dict[str, Any]) -> float:
    """Seconds to the first chunk with content or a tool call, on a fresh connection."""
    connection = Connection(url)
    started = time.perf_counter()
    await connection.open()
    assert connection.reader is not None and connection.writer is not None
    payload = json.dumps(body).encode()
    connection.writer.write(
        f"POST {connection.path} HTTP/1.1\r\nHost: {connection.host}\r\nContent-Type: "
        f"application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    first = None
    while True:
        line = await connection.reader.readline()
        if not line:
            break
        if first is None and line.startswith(b"data: {") and TOKEN.search(line):
            first = time.perf_counter() - started
        if line.startswith(b"data: [DONE]"):
            break
    await connection.close()
    assert first is not None, "no token in the stream"
    return first


async def _timed(n: int, fn: Callable[[], Awaitable[Any]]) -> list[float]:
    for _ in range(min(50, n)):
        await fn()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - started)
    return times


async def _measure(
    upstream: str, gateway: str, n: int, n_stream: int
) -> list[tuple[str, list[float]]]:
    rows: list[tuple[str, list[float]]] = []
    direct = Connection(f"{upstream}/chat/completions")
    through = Connection(f"{gateway}/chat/completions")
    await direct.open()
    await through.open()
    native = {"model": "m", "messages": MESSAGES, "tools": TOOLS}

    async def call(connection: Connection, body: dict[str, Any]) -> None:
        status, reply = await connection.post_json(body)
        assert status == 200 and reply["choices"][0]["message"]["tool_calls"], reply

    cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("direct upstream", lambda: call(direct, native)),
        ("gateway, native", lambda: call(through, {**native, "model": "native"})),
        ("gateway, emulate", lambda: call(through, {**native, "model": "emulate"})),
    ]
    for _round in range(2):  # interleaved rounds: drift on a shared machine hits every row
        for name, fn in cases:
            times = await _timed(n // 2, fn)
            found = next((r for r in rows if r[0] == name), None)
            rows.append((name, times)) if found is None else found[1].extend(times)
    streamed = {**native, "stream": True}
    stream_cases = [
        ("stream TTFT, direct", f"{upstream}/chat/completions", streamed),
        ("stream TTFT, gateway native", f"{gateway}/chat/completions",
         {**streamed, "model": "native"}),
        ("stream TTFT, gateway emulate", f"{gateway}/chat/completions",
         {**streamed, "model": "emulate"}),
    ]  # fmt: skip
    for name, url, body in stream_cases:
        rows.append((name, await _timed(n_stream, lambda u=url, b=body: _ttft(u, b))))  # type: ignore[misc]
    await direct.close()
    await through.close()
    return rows


def _wait(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "a benchmark server exited"
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def main(quick: bool = False) -> None:
    n, n_stream = (200, 100) if quick else (2000, 500)
    up_port, gw_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}/v1"
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "models.json"
        config.write_text(json.dumps({"models": [
            {"name": "native", "base_url": upstream, "model": "m", "mode": "native"},
            {"name": "emulate", "base_url": upstream, "model": "m", "mode": "emulate"},
        ]}))  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLRUN_")}
        up = subprocess.Popen([sys.executable, "-m", "bench.gateway", "--upstream", str(up_port)])
        gw = subprocess.Popen(
            [sys.executable, "-m", "toolrun.cli.main", "gateway", "--port", str(gw_port),
             "--config", str(config), "--data-dir", f"{tmp}/data", "--workers", "1",
             "--log-level", "warning"],
            env={**env, "TOOLRUN_RETRIEVAL_EMBEDDER": "none"},
        )  # fmt: skip
        try:
            _wait(f"http://127.0.0.1:{up_port}/", up)
            _wait(f"http://127.0.0.1:{gw_port}/health", gw)
            rows = asyncio.run(_measure(upstream, f"http://127.0.0.1:{gw_port}/v1", n, n_stream))
        finally:
            for process in (gw, up):
                process.terminate()
                process.wait(timeout=15)
    _report(rows)


def _report(rows: list[tuple[str, list[float]]]) -> None:
    load = os.getloadavg()
    print(f"\ngateway overhead (load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")
    print(f"{'path':32} {'calls':>6} {'p50 ms':>8} {'p99 ms':>8} {'p50 overhead':>13}")
    print("-" * 71)
    base: dict[bool, float] = {}
    for name, times in rows:
        ms = sorted(t * 1000 for t in times)
        p50, p99 = statistics.median(ms), ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        streaming = name.startswith("stream")
        if "direct" in name:
            base[streaming] = p50
            extra = "(baseline)"
        else:
            extra = f"+{p50 - base[streaming]:.2f} ms"
        print(f"{name:32} {len(ms):6d} {p50:8.2f} {p99:8.2f} {extra:>13}")
    p50s = {name: statistics.median(times) * 1000 for name, times in rows}
    worst = max(p50s["gateway, native"], p50s["gateway, emulate"]) - p50s["direct upstream"]
    verdict = "PASS" if worst <= TARGET_MS else "MISS"
    print(f"\ntarget non-streaming p50 overhead <= {TARGET_MS:g} ms: +{worst:.2f} ms  {verdict}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream:
        asyncio.run(_serve_upstream(args.upstream))
    else:
        main(quick=args.quick)
