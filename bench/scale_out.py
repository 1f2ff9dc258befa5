"""The Celery executor beside the embedded one: the same worker-process tool called over REST
and WebSocket, through ``toolrun serve`` (local executor, SQLite) and through ``toolrun serve``
+ ``toolrun worker`` (Celery on Redis, PostgreSQL), in the same run on the same machine.

Needs PostgreSQL and Redis on their standard loopback ports (``TOOLRUN_BENCH_POSTGRES_URL``,
``TOOLRUN_BENCH_REDIS_URL`` override them); says so and skips the rows when they are absent.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.invoke import PROCESS, ROOT, Result, bench_rest, bench_ws, free_port, process

PG_ADMIN = os.environ.get(
    "TOOLRUN_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS = os.environ.get("TOOLRUN_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
TOOL = {
    "name": PROCESS,
    "input_schema": {
        "type": "object",
        "properties": {"value": {"type": "integer"}},
        "required": ["value"],
    },
    "runtime": {"kind": "python", "target": "toolrun.demo.functions:increment"},
    "policy": {"isolation": "process"},
}


@contextmanager
def database() -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"toolrun_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def services_missing() -> str | None:
    try:
        import redis
        from sqlalchemy import create_engine, text

        engine = create_engine(PG_ADMIN)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        redis.Redis.from_url(REDIS, socket_connect_timeout=2).ping()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


def toolrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "toolrun.cli.main", *args]


@contextmanager
def store_for(kind: str) -> Iterator[str | None]:
    """None (the SQLite file of the data directory) for local, a fresh database for celery."""
    if kind == "local":
        yield None
        return
    with database() as url:
        yield url


@contextmanager
def deployment(kind: str, data: str) -> Iterator[str]:
    """A server (and for celery a worker) with the benchmark tool; yields its base URL."""
    port = free_port()
    serve = ["serve", "--port", str(port), "--ws-port", str(port), "--data-dir", data]
    serve += ["--log-level", "warning"]
    env = {"TOOLRUN_WORKERS": "2"}
    with store_for(kind) as database_url:
        if database_url:
            env.update(
                TOOLRUN_EXECUTOR="celery",
                TOOLRUN_BROKER_URL=REDIS,
                TOOLRUN_DATABASE_URL=database_url,
                TOOLRUN_CELERY_QUEUE=f"bench-{uuid.uuid4().hex[:8]}",
            )
        spec = Path(data) / "tool.json"
        spec.write_text(json.dumps(TOOL))
        subprocess.run(
            toolrun("register", str(spec), "--data-dir", data),
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, **env},
        )
        base = f"http://127.0.0.1:{port}"
        with process(toolrun(*serve), f"{base}/health", env=env):
            if kind == "local":
                yield base
                return
            worker_args = ["worker", "--concurrency", "16", "--log-level", "warning"]
            worker = subprocess.Popen(
                toolrun(*worker_args),
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                yield base
            finally:
                worker.terminate()
                worker.wait(timeout=30)


def main(*, quick: bool = False) -> None:
    missing = services_missing()
    if missing:
        print(f"\nscale-out benchmark skipped: PostgreSQL and Redis are needed ({missing})")
        return
    total = 300 if quick else 2000
    warmup = 50 if quick else 200
    results: list[Result] = []
    for kind in ("local", "celery"):
        with tempfile.TemporaryDirectory() as data, deployment(kind, data) as base:
            label = "embedded (local, SQLite)" if kind == "local" else "celery (Redis, PG)"
            ws = f"{base.replace('http', 'ws')}/tool"
            for concurrency in (1, 32):
                rest = bench_rest(f"{base}/tools/{PROCESS}/invoke", total, concurrency, warmup)
                latencies, wall = asyncio.run(rest)
                results.append(Result(f"rest, {label}", concurrency, latencies, wall))
                socket = bench_ws(ws, PROCESS, total // 3, concurrency, warmup // 3)
                latencies, wall = asyncio.run(socket)
                results.append(Result(f"ws, {label}", concurrency, latencies, wall))
    print(
        f"\nscale-out benchmark: worker-process tool, {total} REST / {total // 3} WebSocket calls"
    )
    print("per row; celery: 1 API process + 1 worker (16 threads, 2 worker processes)\n")
    header = f"{'path':<36}{'conc':>5}{'p50 ms':>9}{'p99 ms':>9}{'calls/s':>9}"
    print(header)
    print("-" * len(header))
    for r in sorted(results, key=lambda r: (r.name.split(",")[0], r.concurrency, r.name)):
        print(f"{r.name:<36}{r.concurrency:>5}{r.p50:>9.2f}{r.p99:>9.2f}{r.rate:>9.0f}")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
