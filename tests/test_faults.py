"""Faults of the scale-out setup, on real services: PostgreSQL, Redis, RabbitMQ and real
``toolrun serve`` / ``toolrun worker`` processes (skipped locally without the services,
required when ``CI=true``).

- a worker killed with SIGKILL mid-job: another worker runs the job, the WebSocket client
  gets exactly one result (with Redis and with RabbitMQ as the broker);
- the API process killed and restarted while 500 WebSocket jobs are in flight: every job
  ends, each client either has its result or saw its connection fail, and can read the
  result by uuid;
- Redis (broker and events) restarted mid-traffic: the service recovers by itself.

Nothing sleeps for luck: tools block until the test releases them, and every wait polls a
condition with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.cluster import AMQP_URL, REDIS_URL, Cluster, cluster, own_redis, require
from tests.processes import eventually, is_dead
from toolrun.demo.catalog import BINARY_INCREMENT

pytestmark = [pytest.mark.celery, pytest.mark.e2e, pytest.mark.timeout(180)]

BLOCKER = {
    "name": "blocker",
    "runtime": {"kind": "python", "target": "hostile_tools:block_until"},
    # A worker that dies mid-call costs its job an attempt: one more lets another finish it.
    "policy": {"retry": {"max_attempts": 2, "backoff_s": 0}},
}
GATE = {"name": "gate", "runtime": {"kind": "python", "target": "gates:gate"}}
FINAL = {"succeeded", "failed", "cancelled", "timed_out"}


def register(url: str, *tools: dict[str, Any]) -> None:
    for spec in tools:
        reply = httpx.post(f"{url}/tool", json=spec)
        assert reply.status_code == 201, reply.text


async def ws_call(url: str, tool_id: str, arguments: dict[str, Any]) -> list[dict[str, Any]]:
    """Seed 002's lifecycle: every message the server sends until it closes."""
    async with websockets.connect(f"{url}/tool") as ws:
        await ws.send(json.dumps({"tool_id": tool_id, "input_data": arguments}))
        return [json.loads(message) async for message in ws]


def stored_statuses(database_url: str) -> dict[str, str]:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return {row.id: row.status for row in conn.execute(text("SELECT id, status FROM jobs"))}
    finally:
        engine.dispose()


def file_holding_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text else None


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
@pytest.mark.anyio
async def test_kill_9_worker_mid_job_another_finishes_it(broker: str, tmp_path: Path) -> None:
    require("PostgreSQL", "Redis", *(["RabbitMQ"] if broker == "rabbitmq" else []))
    started, release = tmp_path / "started", tmp_path / "release"
    broker_url = REDIS_URL if broker == "redis" else AMQP_URL
    # Short lease and visibility timeout so the takeover happens within seconds.
    fast = {"TOOLRUN_JOB_LEASE_S": "2", "TOOLRUN_BROKER_VISIBILITY_TIMEOUT_S": "3"}
    with cluster(tmp_path / "c", broker_url=broker_url, events_url=REDIS_URL, extra_env=fast) as c:
        api = c.start_api()
        c.start_workers(2)
        register(api.url, BLOCKER)
        args = {"started": str(started), "release": str(release)}
        client = asyncio.create_task(ws_call(api.ws_url, "blocker", args))

        await eventually(lambda: file_holding_pid(started) is not None, timeout=30)
        first_pid = file_holding_pid(started)
        assert first_pid is not None
        started.unlink()
        victim = c.worker_running(first_pid)
        os.kill(victim.pid, signal.SIGKILL)
        await eventually(lambda: is_dead(victim.pid) and is_dead(first_pid), timeout=15)

        await eventually(lambda: file_holding_pid(started) is not None, timeout=60)
        second_pid = file_holding_pid(started)
        assert second_pid is not None and second_pid != first_pid
        survivor = c.worker_running(second_pid)
        assert survivor is not victim
        release.touch()
        messages = await asyncio.wait_for(client, 60)

        assert len(messages) == 2, messages  # accepted, then exactly one result
        accepted, result = messages
        assert accepted == {"success": True, "uuid": accepted["uuid"]}
        assert result == {
            "success": True,
            "uuid": accepted["uuid"],
            "output": {"result": second_pid},
        }
        job = httpx.get(f"{api.url}/jobs/{accepted['uuid']}").json()
        assert job["status"] == "succeeded" and job["attempts"] == 2, job


async def _clients_through_a_restart(c: Cluster, release: Path, count: int) -> None:
    api = c.api
    accepted: dict[int, str] = {}
    completed: dict[int, list[dict[str, Any]]] = {}

    async def client(i: int) -> tuple[str, Any]:
        try:
            async with websockets.connect(f"{api.ws_url}/tool", open_timeout=60) as ws:
                request = {"tool_id": "gate", "input_data": {"release": str(release), "n": i}}
                await ws.send(json.dumps(request))
                first = json.loads(await ws.recv())
                assert first["success"] is True, first
                accepted[i] = first["uuid"]
                rest = [json.loads(message) async for message in ws]
                completed[i] = rest
                return "answered", rest
        except (websockets.ConnectionClosed, OSError, TimeoutError) as exc:
            return "connection failed", exc

    clients = [asyncio.create_task(client(i)) for i in range(count)]
    await eventually(lambda: len(accepted) >= count // 2, timeout=90)
    release.touch()
    await eventually(lambda: len(completed) >= 20, timeout=60)
    new_api = c.restart_api(0, hard=True)  # SIGKILL: nothing is flushed or said
    outcomes = await asyncio.wait_for(asyncio.gather(*clients), 60)

    # Every client either has exactly one result, or saw its connection fail.
    for i, (kind, detail) in enumerate(outcomes):
        if kind == "answered":
            assert (
                detail == [{"success": True, "uuid": accepted[i], "output": {"result": i}}]
                or detail == []
            ), (i, detail)
    answered = sum(1 for kind, detail in outcomes if kind == "answered" and detail)
    assert answered >= 20 and len(accepted) >= count // 2
    # Every accepted job can be read back, by uuid, from the restarted API: it succeeded.
    async with httpx.AsyncClient(base_url=new_api.url, timeout=90) as http:
        for i, job_id in accepted.items():
            job = (await http.get(f"/jobs/{job_id}", params={"wait_s": 60})).json()
            assert job["status"] == "succeeded" and job["output"] == {"result": i}, job
    # And no job in the store is left behind, accepted or not (a job stored by the killed
    # process but never sent is sent again by the restarted one).
    statuses: dict[str, str] = {}

    def all_final() -> bool:
        statuses.update(stored_statuses(c.database_url))
        return all(status in FINAL for status in statuses.values())

    await eventually(all_final, timeout=60)
    assert set(accepted.values()) <= set(statuses)
    assert set(statuses.values()) == {"succeeded"}, statuses


@pytest.mark.anyio
async def test_api_restart_with_500_websocket_jobs_in_flight(tmp_path: Path) -> None:
    require("PostgreSQL", "Redis")
    with cluster(tmp_path / "c") as c:
        c.start_api()
        c.start_workers(2, concurrency=8, workers=2)
        register(c.api.url, GATE)
        await _clients_through_a_restart(c, tmp_path / "release", 500)


@pytest.mark.anyio
async def test_redis_restart_mid_traffic_recovers_by_itself(tmp_path: Path) -> None:
    require("PostgreSQL", "redis-server")
    release = tmp_path / "release"
    with own_redis(tmp_path / "redis") as redis, cluster(tmp_path / "c", broker_url=redis.url) as c:
        api = c.start_api()
        c.start_workers(2)
        register(api.url, GATE)
        # A WebSocket job that is waiting across the restart.
        held = asyncio.create_task(ws_call(api.ws_url, "gate", {"release": str(release), "n": 7}))
        outcomes: list[int] = []
        stop = asyncio.Event()

        async def traffic() -> None:
            async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
                for value in range(10_000):
                    if stop.is_set():
                        return
                    reply = await http.post(
                        f"/tools/{BINARY_INCREMENT}/invoke", json={"value": value}
                    )
                    outcomes.append(reply.status_code)

        load = asyncio.create_task(traffic())
        await eventually(lambda: len(outcomes) >= 20, timeout=30)
        assert set(outcomes) == {200}
        redis.stop()
        redis.start()  # same port, same append-only file
        before = len(outcomes)
        # Recovered without anyone's help: calls made after the restart succeed again.
        await eventually(
            lambda: len(outcomes) >= before + 20 and set(outcomes[-10:]) == {200}, timeout=60
        )
        stop.set()
        await asyncio.wait_for(load, 30)
        assert all(w.process.poll() is None for w in c.workers), c.logs()  # nobody died
        assert set(outcomes) <= {200, 503}, outcomes  # a refused call said so, none hung
        release.touch()
        messages = await asyncio.wait_for(held, 60)
        assert messages[-1]["success"] is True and messages[-1]["output"] == {"result": 7}, messages
        await eventually(lambda: set(stored_statuses(c.database_url).values()) <= FINAL, timeout=60)
