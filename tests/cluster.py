"""A scale-out toolrun on this machine, for tests: API processes (``toolrun serve``) and Celery
workers (``toolrun worker``) as real processes, sharing a fresh PostgreSQL database, a Redis
(the machine's, or one the test owns so it can restart it) and optionally RabbitMQ.

Each cluster gets its own database and its own Celery queue name (which also prefixes its
event channels and leases), so tests never see each other's jobs, even on a shared Redis.
Services that are missing skip the test locally and fail it when ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import TEST_PYTHON_MODULES
from tests.servers import RunningServer, free_port, toolrun_server

PG_ADMIN_URL = os.environ.get(
    "TOOLRUN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TOOLRUN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("TOOLRUN_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
IN_CI = os.environ.get("CI", "").lower() == "true"
FIXTURES = Path(__file__).parent / "fixtures"


def unavailable(service: str, reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{service} is required when CI=true: {reason}")
    pytest.skip(f"{service} not available: {reason}")


def _check(service: str, probe: Callable[[], object]) -> None:
    try:
        probe()
    except Exception as exc:
        unavailable(service, f"{type(exc).__name__}: {exc}".splitlines()[0])


def _postgres() -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def _redis() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def _rabbitmq() -> None:
    from kombu import Connection

    with Connection(AMQP_URL, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1)


def _redis_binary() -> None:
    if shutil.which("redis-server") is None:
        raise FileNotFoundError("no redis-server on PATH")


PROBES: dict[str, Callable[[], None]] = {
    "PostgreSQL": _postgres,
    "Redis": _redis,
    "RabbitMQ": _rabbitmq,
    "redis-server": _redis_binary,
}


def require(*services: str) -> None:
    """Skip (locally) or fail (CI) unless every named service answers."""
    for service in services:
        _check(service, PROBES[service])


@contextmanager
def fresh_database(admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A new PostgreSQL database on the server of ``admin_url``, dropped afterwards; yields
    its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"toolrun_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class RedisServer:
    """A ``redis-server`` of the test's own (so it may be restarted), persisting every write
    to its append-only file as a broker's Redis should."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory)]
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            assert self.process.poll() is None, (self.directory / "redis.log").read_text()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: redis flushes its append-only file and exits
            self.process.wait(timeout=10)


@contextmanager
def own_redis(directory: Path) -> Iterator[RedisServer]:
    directory.mkdir(parents=True, exist_ok=True)
    server = RedisServer(free_port(), directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Worker:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class Cluster:
    env: dict[str, str]
    root: Path
    database_url: str
    apis: list[RunningServer] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    stack: ExitStack = field(default_factory=ExitStack)

    @property
    def api(self) -> RunningServer:
        return self.apis[0]

    def start_api(self, *, port: int | None = None, ws_port: int | None = None) -> RunningServer:
        data = self.root / f"api-{len(self.apis)}"
        server = self.stack.enter_context(
            toolrun_server(data, demo=True, env=self.env, port=port, ws_port=ws_port)
        )
        self.apis.append(server)
        return server

    def restart_api(self, index: int = 0, *, hard: bool = True) -> RunningServer:
        """Stop API ``index`` (SIGKILL, or SIGINT when not ``hard``) and start it again on the
        same ports."""
        old = self.apis[index]
        if hard:
            old.process.kill()
        else:
            old.process.send_signal(signal.SIGINT)
        old.process.wait(timeout=30)
        data = self.root / f"api-{index}-again"
        new = self.stack.enter_context(
            toolrun_server(data, demo=True, env=self.env, port=old.port, ws_port=old.ws_port)
        )
        self.apis[index] = new
        return new

    def worker_running(self, pid: int) -> Worker:
        """The worker whose process tree holds ``pid`` (a tool's worker process)."""
        chain = set(ancestors(pid))
        found = [w for w in self.workers if w.pid in chain]
        assert len(found) == 1, (pid, chain, [w.pid for w in self.workers])
        return found[0]

    def start_workers(self, count: int, *, concurrency: int = 4, workers: int = 1) -> list[Worker]:
        """Start ``count`` workers at once; return when every one consumes."""
        started = [
            self.launch_worker(concurrency=concurrency, workers=workers) for _ in range(count)
        ]
        for worker in started:
            wait_for_log(worker, " ready.")
        return started

    def launch_worker(self, *, concurrency: int = 4, workers: int = 1) -> Worker:
        name = f"w{len(self.workers)}-{uuid.uuid4().hex[:6]}@test"
        log = self.root / f"{name}.log"
        args = [sys.executable, "-m", "toolrun.cli.main", "worker", "--hostname", name]
        args += ["--concurrency", str(concurrency), "--workers", str(workers)]
        args += ["--log-level", "info"]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLRUN_")}
        full_env.update(self.env)
        with log.open("wb") as sink:
            process = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, env=full_env)
        worker = Worker(name, process, log)
        self.workers.append(worker)
        return worker

    def stop_workers(self) -> None:
        """SIGTERM to every worker at once (warm shutdown), then wait for each."""
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in self.workers:
            stop_process(worker.process)

    def logs(self) -> str:
        parts = [f"--- {w.name}\n{w.log.read_text()[-4000:]}" for w in self.workers]
        parts += [f"--- api {a.port}\n{a.log.read_text()[-4000:]}" for a in self.apis]
        return "\n".join(parts)


def ancestors(pid: int) -> Iterator[int]:
    """``pid``'s parent, its parent, and so on (from /proc)."""
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        yield pid


def wait_for_log(worker: Worker, needle: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while needle not in worker.log.read_text(errors="replace"):
        if worker.process.poll() is not None:
            raise RuntimeError(f"worker {worker.name} exited:\n{worker.log.read_text()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"worker {worker.name} not ready:\n{worker.log.read_text()}")
        time.sleep(0.05)


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def cluster(
    root: Path,
    *,
    broker_url: str = REDIS_URL,
    events_url: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Cluster]:
    """An empty cluster (start APIs and workers on it) on a fresh database."""
    root.mkdir(parents=True, exist_ok=True)
    with fresh_database() as database_url:
        env = {
            "TOOLRUN_EXECUTOR": "celery",
            "TOOLRUN_BROKER_URL": broker_url,
            "TOOLRUN_DATABASE_URL": database_url,
            "TOOLRUN_CELERY_QUEUE": f"test-{uuid.uuid4().hex[:12]}",
            "PYTHONPATH": str(FIXTURES),
            # The test tool modules remote clients may name (module-scoped clusters start
            # before the autouse fixture of tests/conftest.py sets it for each test).
            "TOOLRUN_REMOTE_PYTHON_MODULES": TEST_PYTHON_MODULES,
            **({"TOOLRUN_EVENTS_URL": events_url} if events_url else {}),
            **(extra_env or {}),
        }
        running = Cluster(env, root, database_url)
        running.stack.callback(running.stop_workers)  # last: after the API processes
        try:
            with running.stack:
                yield running
        finally:
            _forget_queue(broker_url, env["TOOLRUN_CELERY_QUEUE"])


def _forget_queue(broker_url: str, queue: str) -> None:
    """Delete the cluster's queue (and its exchange, named alike) from a shared broker."""
    from kombu import Connection

    try:
        with Connection(broker_url, connect_timeout=2) as conn:
            conn.default_channel.queue_delete(queue)
            conn.default_channel.exchange_delete(queue)
    except Exception:  # the broker is gone: nothing left to tidy
        pass
    if broker_url.startswith("redis"):  # kombu keeps its bindings in keys of their own
        import redis

        try:
            with redis.Redis.from_url(broker_url, socket_connect_timeout=2) as client:
                client.delete(f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
                stale = [
                    m
                    for m in client.zrange("_kombu.binding_deadlines", 0, -1)
                    if queue.encode() in m
                ]
                if stale:
                    client.zrem("_kombu.binding_deadlines", *stale)
        except Exception:
            pass


EXECUTORS = ["local", pytest.param("celery", marks=pytest.mark.celery)]
"""Parameters of a server fixture that runs its module's checks against both executors."""


@contextmanager
def served(executor: str, root: Path) -> Iterator[RunningServer]:
    """``toolrun serve --demo`` (local), or two API processes and two workers (celery) seen
    as one server: REST on the first API, the WebSocket port on the second, so every check
    of a module written for one server crosses replicas."""
    if executor == "local":
        with toolrun_server(root / "data") as running:
            yield running
        return
    require("PostgreSQL", "Redis")
    with cluster(root / "celery") as scale_out:
        first, second = scale_out.start_api(), scale_out.start_api()
        scale_out.start_workers(2)
        yield RunningServer(first.port, second.ws_port, first.process, first.log)
