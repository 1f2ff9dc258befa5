"""The Celery executor: settings, the app's delivery settings, the event bus and leases on a
real Redis, compare-and-set under concurrent writers on PostgreSQL, ``toolrun db upgrade``,
and two API processes with two workers answering across replicas.

The seed end-to-end checks (WebSocket lifecycle, REST) run against a scale-out cluster too:
``tests/test_e2e.py`` parametrizes its server over both executors. Fault tests are in
``tests/test_faults.py``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from tests.cluster import REDIS_URL, Cluster, cluster, fresh_database, own_redis, require
from tests.processes import eventually
from toolrun.config import Settings
from toolrun.execution.jobs import Job, JobStatus
from toolrun.response import Response

# -- settings and the app (no services) ------------------------------------------------------


def test_celery_needs_a_broker_and_rabbitmq_needs_an_events_redis() -> None:
    with pytest.raises(ValidationError, match="TOOLRUN_BROKER_URL"):
        Settings(executor="celery")
    with pytest.raises(ValidationError, match="TOOLRUN_EVENTS_URL"):
        Settings(executor="celery", broker_url="amqp://guest:guest@localhost//")
    with pytest.raises(ValidationError, match="broker_url must start with"):
        Settings(executor="celery", broker_url="sqs://queue")
    with pytest.raises(ValidationError, match="events_url must be a Redis URL"):
        Settings(executor="celery", broker_url="redis://h/0", events_url="amqp://h//")
    redis_only = Settings(executor="celery", broker_url="redis://h:6379/3")
    assert redis_only.resolved_events_url == "redis://h:6379/3"
    both = Settings(executor="celery", broker_url="amqp://h//", events_url="redis://e/1")
    assert both.resolved_events_url == "redis://e/1"


def test_the_app_acks_late_rejects_on_worker_lost_and_speaks_json_only() -> None:
    from toolrun.execution.celery_app import TASK_NAME, make_celery_app

    settings = Settings(
        executor="celery", broker_url="redis://127.0.0.1:1/0", broker_visibility_timeout_s=120
    )
    app = make_celery_app(settings)
    conf = app.conf
    assert conf.task_acks_late is True and conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.result_accept_content == ["json"] and conf.result_serializer == "json"
    assert conf.task_default_queue == "toolrun"
    assert conf.broker_transport_options["visibility_timeout"] == 120
    task = app.tasks[TASK_NAME]
    assert task.acks_late is True and task.reject_on_worker_lost is True


def test_worker_without_a_broker_says_what_to_set(tmp_path: Path) -> None:
    from toolrun.cli.main import app

    result = CliRunner().invoke(app, ["worker", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: invalid settings") and result.stderr.count("\n") == 1
    assert "TOOLRUN_BROKER_URL" in result.stderr


def test_the_local_default_imports_no_celery() -> None:
    code = (
        "import sys, toolrun.platform, toolrun.server.app, toolrun.cli.main; "
        "print(sorted(m for m in ('celery', 'kombu', 'redis') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- PostgreSQL: concurrent writers and migrations -------------------------------------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    require("PostgreSQL")
    with fresh_database() as url:
        yield url


@pytest.mark.celery
def test_compare_and_set_holds_under_concurrent_writers(pg_url: str) -> None:
    """Two "processes" (engines) with four writers each race to start and to finish the same
    jobs: each transition has exactly one winner, and the stored result is the winner's."""
    from toolrun.storage.engine import make_engine, upgrade
    from toolrun.storage.job_store import JobStore

    engines = [make_engine(pg_url, pool_size=4) for _ in range(2)]
    upgrade(engines[0])
    stores = [JobStore(engine) for engine in engines]
    batch = [Job(tool_id="t", arguments={"i": i}) for i in range(200)]
    stores[0].add_many(batch)
    wins: dict[str, list[str]] = {"start": [], "finish": []}
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def writer(name: str, store: JobStore) -> None:
        barrier.wait()
        for job in batch:
            started = job.evolve(status=JobStatus.RUNNING, attempts=1)
            if store.save_if(started, JobStatus.QUEUED):
                with lock:
                    wins["start"].append(f"{job.id}/{name}")
        for job in batch:
            done = job.evolve(status=JobStatus.SUCCEEDED, result=Response.from_value(name))
            if store.save_if(done, JobStatus.RUNNING):
                with lock:
                    wins["finish"].append(f"{job.id}/{name}")

    threads = [
        threading.Thread(target=writer, args=(f"p{p}w{w}", stores[p]))
        for p in range(2)
        for w in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        for kind in ("start", "finish"):
            winners = [entry.split("/")[0] for entry in wins[kind]]
            assert sorted(winners) == sorted(job.id for job in batch), kind
        finishers = dict(entry.split("/") for entry in wins["finish"])
        for job in batch:
            stored = stores[1].get(job.id)
            assert stored.status == JobStatus.SUCCEEDED
            assert stored.result is not None and stored.result.output == {
                "result": finishers[job.id]
            }
    finally:
        for engine in engines:
            engine.dispose()


@pytest.mark.celery
def test_db_upgrade_is_idempotent_and_safe_to_run_at_once(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import inspect

    from toolrun.cli.main import app
    from toolrun.storage.engine import make_engine, upgrade

    engines = [make_engine(pg_url, pool_size=1) for _ in range(3)]
    try:  # three replicas starting at once on an empty database
        errors: list[BaseException] = []

        def migrate(engine: Any) -> None:
            try:
                upgrade(engine)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=migrate, args=(e,)) for e in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        assert {"jobs", "tools"} <= set(inspect(engines[0]).get_table_names())
    finally:
        for engine in engines:
            engine.dispose()
    monkeypatch.setenv("TOOLRUN_DATABASE_URL", pg_url)
    runner = CliRunner()
    first = runner.invoke(app, ["db", "upgrade"])
    second = runner.invoke(app, ["db", "upgrade"])
    assert first.exit_code == second.exit_code == 0, first.output
    assert first.stdout.startswith("database at revision 0")
    assert first.stdout == second.stdout


# -- Redis: the event bus, the waiters' fallback, leases -------------------------------------


@pytest.fixture
def namespace() -> str:
    require("Redis")
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.mark.celery
@pytest.mark.anyio
async def test_events_reach_per_job_and_all_subscribers(namespace: str) -> None:
    from toolrun.execution.events import EventBus, JobEvent

    bus = EventBus(REDIS_URL, namespace)
    bus.listen([bus.jobs_channel, bus.control_channel])
    try:
        async with bus.subscribe("a") as only_a, bus.subscribe() as everything:
            await asyncio.wait_for(bus.connected.wait(), 10)
            assert (await asyncio.wait_for(only_a.get(), 5)).kind == "resync"
            assert (await asyncio.wait_for(everything.get(), 5)).kind == "resync"
            await bus.status("b", JobStatus.RUNNING)
            await bus.status("a", JobStatus.SUCCEEDED)
            await bus.cancel("a")
            got = [await asyncio.wait_for(everything.get(), 5) for _ in range(3)]
            assert got == [
                JobEvent("status", "b", JobStatus.RUNNING),
                JobEvent("status", "a", JobStatus.SUCCEEDED),
                JobEvent("cancel", "a"),
            ]
            assert await asyncio.wait_for(only_a.get(), 5) == got[1]
            assert await asyncio.wait_for(only_a.get(), 5) == got[2]
            assert only_a.empty()
    finally:
        await bus.close()


@pytest.mark.celery
@pytest.mark.anyio
async def test_a_waiter_is_answered_by_the_store_when_the_event_is_lost(namespace: str) -> None:
    from toolrun.execution.events import EventBus, JobWatch

    stored = {"j": JobStatus.RUNNING}
    polls: list[list[str]] = []

    async def statuses(ids: list[str]) -> dict[str, JobStatus]:
        polls.append(ids)
        return {i: stored[i] for i in ids if i in stored}

    bus = EventBus(REDIS_URL, namespace)
    bus.listen([bus.jobs_channel])
    watch = JobWatch(bus, statuses, poll_s=0.2)
    watch.start()
    try:
        ended = watch.watch("j")
        await eventually(lambda: ["j"] in polls, timeout=5)  # a poll sees it still running
        assert not ended.done()
        stored["j"] = JobStatus.SUCCEEDED  # ...and no event is ever published
        await asyncio.wait_for(ended, 5)
        heard = watch.watch("k")
        await bus.status("k", JobStatus.FAILED)
        await asyncio.wait_for(heard, 5)
        assert watch.watched == 0
    finally:
        await watch.close()
        await bus.close()


@pytest.mark.celery
@pytest.mark.anyio
async def test_the_bus_reconnects_by_itself_after_a_redis_restart(tmp_path: Path) -> None:
    require("redis-server")
    from toolrun.execution.events import EventBus, JobEvent

    with own_redis(tmp_path / "redis") as redis:
        bus = EventBus(redis.url, "t")
        bus.listen([bus.jobs_channel])
        try:
            async with bus.subscribe("x") as events:
                assert (await asyncio.wait_for(events.get(), 10)).kind == "resync"
                redis.stop()
                await eventually(lambda: not bus.connected.is_set(), timeout=10)
                assert not await bus.status("x", JobStatus.RUNNING)  # said, not raised
                redis.start()
                assert (await asyncio.wait_for(events.get(), 15)).kind == "resync"
                assert await bus.status("x", JobStatus.SUCCEEDED)
                assert await asyncio.wait_for(events.get(), 5) == JobEvent(
                    "status", "x", JobStatus.SUCCEEDED
                )
        finally:
            await bus.close()


@pytest.mark.celery
@pytest.mark.anyio
async def test_leases_belong_to_their_owner_and_lapse(namespace: str) -> None:
    from toolrun.execution.events import EventBus, Leases

    bus = EventBus(REDIS_URL, namespace)
    mine, theirs = Leases(bus, "me", 0.3), Leases(bus, "them", 0.3)
    try:
        assert await mine.claim("j") is True
        assert await theirs.claim("j") is False
        assert await theirs.renew("j") is False  # renewing is for the owner only
        await theirs.release("j")  # and so is releasing
        assert await mine.renew("j") is True
        with anyio.fail_after(5):  # not renewed, it lapses after its TTL
            while not await theirs.claim("j"):
                await asyncio.sleep(0.02)
        await theirs.release("j")
        assert await mine.claim("j") is True
        await mine.release("j")
    finally:
        await bus.close()


# -- two API processes, two workers ----------------------------------------------------------

FIXTURE_TOOLS = [
    {"name": "blocker", "runtime": {"kind": "python", "target": "hostile_tools:block_until"}},
    {"name": "adder", "runtime": {"kind": "python", "target": "hostile_tools:add"}},
    {"name": "boom", "runtime": {"kind": "python", "target": "hostile_tools:raise_value_error"}},
]


@pytest.fixture(scope="module")
def two_by_two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require("PostgreSQL", "Redis")
    with cluster(tmp_path_factory.mktemp("celery")) as running:
        running.start_api()
        running.start_api()
        running.start_workers(2)
        for spec in FIXTURE_TOOLS:
            reply = httpx.post(f"{running.api.url}/tool", json=spec)
            assert reply.status_code == 201, reply.text
        yield running


@pytest.mark.celery
@pytest.mark.e2e
def test_a_job_queued_on_one_replica_is_answered_on_the_other(two_by_two: Cluster) -> None:
    first, second = (api.url for api in two_by_two.apis)
    queued = httpx.post(f"{first}/jobs", json={"tool_id": "adder", "arguments": {"a": 2, "b": 3}})
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    job_id = queued.json()["uuid"]
    done = httpx.get(f"{second}/jobs/{job_id}", params={"wait_s": 30}, timeout=40).json()
    assert done["status"] == "succeeded" and done["output"] == {"result": 5}
    listed = httpx.get(f"{second}/jobs", params={"tool_id": "adder"}).json()
    assert job_id in [job["uuid"] for job in listed]
    failed = httpx.post(f"{second}/tools/boom/invoke", json={"message": "nope"}, timeout=30)
    assert failed.status_code == 200 and failed.json()["isError"] is True
    assert "nope" in failed.json()["content"][0]["text"]
    assert failed.headers["X-Toolrun-Job-Status"] == "failed"
    invalid = httpx.post(f"{first}/tools/binary-increment-tool/invoke", json={"value": "five"})
    assert invalid.status_code == 422 and invalid.json()["error"]["type"] == "invalid_arguments"
    keyed = {"tool_id": "adder", "arguments": {"a": 1, "b": 2}}
    headers = {"Idempotency-Key": f"key-{uuid.uuid4()}"}
    once = httpx.post(f"{first}/jobs", json=keyed, headers=headers)
    again = httpx.post(f"{second}/jobs", json=keyed, headers=headers)  # the other replica
    assert once.status_code == 202 and again.json()["uuid"] == once.json()["uuid"]
    other = httpx.post(
        f"{second}/jobs", json={**keyed, "arguments": {"a": 9, "b": 9}}, headers=headers
    )
    assert other.status_code == 409, other.text
    health = httpx.get(f"{first}/health").json()
    assert health["executor"]["kind"] == "celery" and health["executor"]["events"] == "connected"


@pytest.mark.celery
@pytest.mark.e2e
@pytest.mark.anyio
async def test_cancelling_on_another_replica_stops_the_running_call(
    two_by_two: Cluster, tmp_path: Path
) -> None:
    from tests.processes import is_dead

    first, second = (api.url for api in two_by_two.apis)
    started, release = tmp_path / "started", tmp_path / "never"
    args = {"started": str(started), "release": str(release)}
    async with httpx.AsyncClient(timeout=40) as http:
        job = await http.post(f"{first}/jobs", json={"tool_id": "blocker", "arguments": args})
        job_id = job.json()["uuid"]
        await eventually(lambda: started.exists() and started.read_text().strip() != "", 30)
        tool_pid = int(started.read_text())
        cancelled = (await http.delete(f"{second}/jobs/{job_id}")).json()
        assert cancelled["status"] == "cancelled", cancelled
        await eventually(lambda: is_dead(tool_pid), timeout=10)  # the call itself stopped
        again = (await http.delete(f"{first}/jobs/{job_id}")).json()
        assert again["error"]["type"] == "job_finished"
        # The worker is free again: the next call runs.
        reply = await http.post(f"{first}/tools/adder/invoke", json={"a": 1, "b": 1})
        assert reply.json()["structuredContent"] == {"result": 2}


@pytest.mark.celery
@pytest.mark.e2e
@pytest.mark.anyio
async def test_many_websocket_calls_across_both_replicas(two_by_two: Cluster) -> None:
    import websockets

    async def call(ws_url: str, i: int) -> list[dict[str, Any]]:
        async with websockets.connect(f"{ws_url}/tool") as ws:
            await ws.send(json.dumps({"tool_id": "adder", "input_data": {"a": i, "b": 1}}))
            return [json.loads(message) async for message in ws]

    urls = [api.ws_url for api in two_by_two.apis]
    answers = await asyncio.gather(*(call(urls[i % 2], i) for i in range(100)))
    for i, messages in enumerate(answers):
        assert [m["success"] for m in messages] == [True, True], messages
        assert messages[1]["output"] == {"result": i + 1}


@pytest.mark.celery
@pytest.mark.e2e
@pytest.mark.anyio
async def test_a_queued_job_cancelled_never_runs(two_by_two: Cluster, tmp_path: Path) -> None:
    """Both workers' tool processes (one each) are held, so a third job stays queued; cancelled
    then, it never runs, and the held ones finish once let go."""
    first, second = (api.url for api in two_by_two.apis)
    release = tmp_path / "release"
    async with httpx.AsyncClient(timeout=40) as http:
        held = []
        for i in range(2):
            args = {"started": str(tmp_path / f"started-{i}"), "release": str(release)}
            reply = await http.post(f"{first}/jobs", json={"tool_id": "blocker", "arguments": args})
            held.append(reply.json()["uuid"])
        await eventually(lambda: all((tmp_path / f"started-{i}").exists() for i in range(2)), 30)
        queued = await http.post(
            f"{first}/jobs", json={"tool_id": "adder", "arguments": {"a": 1, "b": 1}}
        )
        job_id = queued.json()["uuid"]
        assert (await http.get(f"{second}/jobs/{job_id}")).json()["status"] == "queued"
        cancelled = (await http.delete(f"{second}/jobs/{job_id}")).json()
        assert cancelled["status"] == "cancelled" and cancelled["attempts"] == 0
        release.touch()
        for held_id in held:
            done = (await http.get(f"{first}/jobs/{held_id}", params={"wait_s": 30})).json()
            assert done["status"] == "succeeded", done
        after = (await http.get(f"{first}/jobs/{job_id}")).json()
        assert (
            after["status"] == "cancelled"
            and after["attempts"] == 0
            and after["started_at"] is None
        )
