"""Job semantics of the embedded executor, end to end: retries with backoff, the dead-letter
list, idempotency keys (across a restart and a race, on SQLite and PostgreSQL), per-tool
concurrency and rate limits, maximum job age, cancellation wherever a job waits, progress
over the seed WebSocket and the event streams, and recovery after a crash."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from tests.processes import eventually
from toolrun import progress
from toolrun.config import Settings
from toolrun.errors import IdempotencyKeyReused
from toolrun.execution.jobs import DeadLetterReason, Job, JobStatus, utcnow
from toolrun.platform import Platform
from toolrun.registry.tool import Tool
from toolrun.server.app import create_app
from toolrun.storage.engine import make_engine, upgrade
from toolrun.storage.job_store import INTERRUPTED, JobStore
from toolrun.storage.tables import jobs as jobs_table
from toolrun.storage.tool_store import ToolStore

TOOLS = "tests.fixtures.job_tools"
FAST_RETRY = {"backoff_s": 0.01, "backoff_factor": 1.0}


def define(where: Platform | ToolStore, name: str, function: str, **policy: Any) -> Tool:
    """Register ``name`` running ``job_tools.<function>`` with ``policy`` (operator side)."""
    tools = where.tools if isinstance(where, Platform) else where
    runtime = {"kind": "python", "target": f"{TOOLS}:{function}"}
    return tools.create(Tool(name=name, runtime=runtime, policy=policy))  # type: ignore[arg-type]


def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait (bounded) for ``condition`` in a synchronous test."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.01)


def assert_error(reply: Any, status: int, type_: str, *needles: str) -> None:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["type"] == type_, error
    for needle in needles:
        assert needle in error["message"], error["message"]


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", workers=3, concurrency=2, ws_port=None)
    with TestClient(create_app(settings)) as client:
        yield client


def platform_of(client: TestClient) -> Platform:
    platform: Platform = client.app.state.platform  # type: ignore[attr-defined]
    return platform


def queue(client: TestClient, tool: str, headers: dict[str, str] | None = None, **args: Any) -> str:
    reply = client.post("/jobs", json={"tool_id": tool, "input_data": args}, headers=headers)
    assert reply.status_code == 202, reply.text
    return str(reply.json()["uuid"])


def finished(client: TestClient, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = client.get(f"/jobs/{job_id}", params={"wait_s": 30}).json()
    assert JobStatus(job["status"]).final, job
    return job


def job_view(client: TestClient, job_id: str) -> dict[str, Any]:
    view: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
    return view


# -- retries and the dead-letter list --------------------------------------------------------


def test_a_failed_attempt_is_retried_with_backoff(client: TestClient, tmp_path: Path) -> None:
    define(platform_of(client), "flaky", "flaky", retry={"max_attempts": 3, **FAST_RETRY})
    counter = tmp_path / "attempts"
    job = finished(client, queue(client, "flaky", counter=str(counter), failures=2))
    assert job["status"] == "succeeded" and job["attempts"] == 3
    assert job["output"] == {"attempt": 3} and job["error"] is None
    assert job["dead_letter"] is None and job["next_attempt_at"] is None
    assert lines(counter) == 3


def test_exhausted_jobs_are_dead_lettered_and_retried_once(
    client: TestClient, tmp_path: Path
) -> None:
    define(platform_of(client), "doomed", "flaky", retry={"max_attempts": 2, **FAST_RETRY})
    counter = tmp_path / "attempts"
    dead_id = queue(client, "doomed", counter=str(counter), failures=99)
    dead = finished(client, dead_id)
    assert dead["status"] == "failed" and dead["attempts"] == 2
    assert "failure 2 of 99" in dead["error"]
    assert dead["dead_letter"]["reason"] == "exhausted" and dead["dead_letter"]["at"]

    listed = client.get("/jobs/dead-letter").json()
    assert [j["uuid"] for j in listed] == [dead_id]
    assert client.get("/jobs/dead-letter", params={"reason": "expired"}).json() == []
    assert (
        client.get("/jobs/dead-letter", params={"tool_id": "doomed"}).json()[0]["uuid"] == dead_id
    )

    reply = client.post(f"/jobs/{dead_id}/retry")
    assert reply.status_code == 202, reply.text
    retry = reply.json()
    assert retry["retry_of"] == dead_id and retry["uuid"] != dead_id
    assert retry["status"] == "queued" and retry["arguments"] == dead["arguments"]
    assert_error(client.post(f"/jobs/{dead_id}/retry"), 409, "not_dead_lettered", "already")

    again = finished(client, retry["uuid"])
    assert again["status"] == "failed" and again["attempts"] == 2 and lines(counter) == 4
    assert [j["uuid"] for j in client.get("/jobs/dead-letter").json()] == [retry["uuid"]]
    assert job_view(client, dead_id)["dead_letter"] is None  # the old one left the list


def test_a_job_waiting_for_its_next_attempt_is_queued_and_cancellable(
    client: TestClient, tmp_path: Path
) -> None:
    platform = platform_of(client)
    define(platform, "patient", "flaky", retry={"max_attempts": 2, "backoff_s": 60})
    counter = tmp_path / "attempts"
    job_id = queue(client, "patient", counter=str(counter), failures=1)
    until(lambda: job_view(client, job_id)["next_attempt_at"] is not None)
    waiting = job_view(client, job_id)
    assert waiting["status"] == "queued" and waiting["attempts"] == 1
    assert waiting["error"].startswith("attempt 1 failed: RuntimeError: failure 1 of 1")
    until(lambda: platform.executor.stats()["delayed"] == 1)  # its backoff timer is set

    cancelled = client.delete(f"/jobs/{job_id}").json()
    assert cancelled["status"] == "cancelled" and cancelled["attempts"] == 1
    assert platform.executor.stats()["delayed"] == 0  # its timer is gone: it never runs again
    assert lines(counter) == 1 and client.get("/jobs/dead-letter").json() == []


def test_a_crashed_worker_and_a_time_limit_are_failed_attempts(
    client: TestClient, tmp_path: Path
) -> None:
    platform = platform_of(client)
    retry = {"max_attempts": 2, "backoff_s": 0}
    define(platform, "crashy", "crash_first", retry=retry)
    define(platform, "hangy", "hang_first", retry=retry, timeout_s=0.5)
    define(platform, "hangs_once", "hang_first", timeout_s=0.5)
    crashed = finished(client, queue(client, "crashy", counter=str(tmp_path / "c")))
    assert crashed["status"] == "succeeded" and crashed["attempts"] == 2
    hung = finished(client, queue(client, "hangy", counter=str(tmp_path / "h")))
    assert hung["status"] == "succeeded" and hung["attempts"] == 2
    timed_out = finished(client, queue(client, "hangs_once", counter=str(tmp_path / "o")))
    assert timed_out["status"] == "timed_out" and timed_out["attempts"] == 1
    assert timed_out["dead_letter"]["reason"] == "exhausted"


def test_a_cancelled_job_is_never_retried(client: TestClient, tmp_path: Path) -> None:
    define(platform_of(client), "held", "hold", retry={"max_attempts": 3, "backoff_s": 0})
    job_id = queue(client, "held", folder=str(tmp_path), name="a")
    until((tmp_path / "a.started").exists)
    cancelled = client.delete(f"/jobs/{job_id}").json()
    assert cancelled["status"] == "cancelled" and cancelled["attempts"] == 1
    assert finished(client, job_id)["status"] == "cancelled"
    assert client.get("/jobs/dead-letter").json() == []


def test_the_dead_letter_list_refuses_what_it_cannot_do(client: TestClient, tmp_path: Path) -> None:
    platform = platform_of(client)
    define(platform, "counted", "count")
    define(platform, "broken", "flaky")
    ok = finished(client, queue(client, "counted", counter=str(tmp_path / "n")))
    dead = finished(client, queue(client, "broken", counter=str(tmp_path / "b"), failures=9))
    assert dead["dead_letter"]["reason"] == "exhausted"  # max_attempts=1 fails once, for good

    assert_error(
        client.get("/jobs/dead-letter", params={"reason": "bogus"}), 422, "invalid_request"
    )
    assert_error(client.get("/jobs/dead-letter", params={"limit": 0}), 422, "invalid_request")
    assert_error(client.post("/jobs/no-such-job/retry"), 404, "not_found")
    assert_error(client.post(f"/jobs/{ok['uuid']}/retry"), 409, "not_dead_lettered", "succeeded")
    assert_error(client.delete(f"/jobs/dead-letter/{ok['uuid']}"), 409, "not_dead_lettered")
    assert_error(client.delete("/jobs/dead-letter/no-such-job"), 404, "not_found")

    kept = client.delete(f"/jobs/dead-letter/{dead['uuid']}")
    assert kept.status_code == 200 and kept.json()["dead_letter"] is None
    assert kept.json()["status"] == "failed"  # off the list, the job itself stays
    assert_error(client.post(f"/jobs/{dead['uuid']}/retry"), 409, "not_dead_lettered")
    again = finished(client, queue(client, "broken", counter=str(tmp_path / "b"), failures=9))
    assert client.delete("/jobs/dead-letter", params={"tool_id": "counted"}).json() == {
        "removed": 0
    }
    assert client.delete("/jobs/dead-letter").json() == {"removed": 1}
    assert client.get("/jobs/dead-letter").json() == []
    assert job_view(client, again["uuid"])["status"] == "failed"


# -- idempotency keys ----------------------------------------------------------------------


def test_an_idempotency_key_names_one_job(client: TestClient, tmp_path: Path) -> None:
    define(platform_of(client), "counted", "count")
    counter = str(tmp_path / "n")
    key = {"Idempotency-Key": "order-42"}
    first = queue(client, "counted", headers=key, counter=counter)
    assert queue(client, "counted", headers=key, counter=counter) == first
    assert finished(client, first)["output"] == {"result": 1}
    assert queue(client, "counted", headers=key, counter=counter) == first
    assert lines(Path(counter)) == 1
    assert job_view(client, first)["idempotency_key"] == "order-42"

    body = {"tool_id": "counted", "input_data": {"counter": counter}, "idempotency_key": "k2"}
    in_body = client.post("/jobs", json=body).json()["uuid"]
    assert client.post("/jobs", json=body, headers={"Idempotency-Key": "k2"}).json()["uuid"] == (
        in_body
    )
    assert in_body != first

    other = {"tool_id": "counted", "input_data": {"counter": counter + "x"}}
    assert_error(
        client.post("/jobs", json=other, headers=key), 409, "idempotency_key_reused", "order-42"
    )
    assert_error(
        client.post("/jobs", json=body, headers={"Idempotency-Key": "k3"}),
        422,
        "invalid_request",
        "differ",
    )
    assert_error(
        client.post("/jobs", json=other, headers={"Idempotency-Key": "k" * 256}),
        400,
        "call_error",
        "255",
    )
    assert_error(
        client.post("/jobs", json={**other, "idempotency_key": "a\x01b"}),
        400,
        "call_error",
        "control",
    )
    assert_error(client.post("/jobs", json={**other, "idempotency_key": ""}), 400, "call_error")


def test_invoke_with_an_idempotency_key_runs_once(client: TestClient, tmp_path: Path) -> None:
    define(platform_of(client), "counted", "count")
    args = {"counter": str(tmp_path / "n")}
    headers = {"Idempotency-Key": "call-1"}
    first = client.post("/tools/counted/invoke", json=args, headers=headers)
    second = client.post("/tools/counted/invoke", json=args, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.headers["X-Toolrun-Job"] == second.headers["X-Toolrun-Job"]
    assert first.json() == second.json() and first.json()["structuredContent"] == {"result": 1}
    assert lines(tmp_path / "n") == 1
    assert_error(
        client.post("/tools/counted/invoke", json={"counter": "elsewhere"}, headers=headers),
        409,
        "idempotency_key_reused",
    )


@pytest.fixture
async def started(tmp_path: Path, database_url: str) -> AsyncIterator[Callable[..., Any]]:
    """Start platforms on one database (closed at the end)."""
    platforms: list[Platform] = []

    async def start(**fields: Any) -> Platform:
        settings = Settings(
            data_dir=tmp_path / "data",
            database_url=database_url,
            workers=1,
            ws_port=None,
            **fields,
        )
        platform = Platform(settings)
        platforms.append(platform)
        await platform.start()
        return platform

    yield start
    for platform in platforms:
        await platform.close()


@pytest.mark.anyio
async def test_an_idempotency_key_survives_a_race_and_a_restart(
    started: Callable[..., Any], tmp_path: Path
) -> None:
    first: Platform = await started()
    define(first, "counted", "count")
    args = {"counter": str(tmp_path / "n")}
    racing = await asyncio.gather(
        *(first.executor.submit_with_key("counted", dict(args), "k-1") for _ in range(8))
    )
    assert len({job.id for job in racing}) == 1
    assert [j.id for j in first.jobs.recent() if j.idempotency_key == "k-1"] == [racing[0].id]
    with anyio.fail_after(20):
        assert (await first.executor.wait(racing[0].id)).status == JobStatus.SUCCEEDED
    await first.close()

    second: Platform = await started()
    again = await second.executor.submit_with_key("counted", dict(args), "k-1")
    assert again.id == racing[0].id and again.status == JobStatus.SUCCEEDED
    with pytest.raises(IdempotencyKeyReused, match="k-1"):
        await second.executor.submit_with_key("counted", {"counter": "other"}, "k-1")
    assert lines(tmp_path / "n") == 1


# -- per-tool limits and maximum age ---------------------------------------------------------


def test_a_tool_at_its_concurrency_limit_holds_its_jobs_without_blocking_others(
    client: TestClient, tmp_path: Path
) -> None:
    """Two dispatchers: one runs ``a``; ``b`` and ``c`` wait at their tool's limit without a
    dispatcher, so the other one still serves other tools."""
    platform = platform_of(client)
    define(platform, "narrow", "hold", concurrency=1)
    define(platform, "counted", "count")
    folder = str(tmp_path)
    a = queue(client, "narrow", folder=folder, name="a")
    until((tmp_path / "a.started").exists)
    b = queue(client, "narrow", folder=folder, name="b")
    c = queue(client, "narrow", folder=folder, name="c")
    until(lambda: platform.executor.stats()["held"] == 2)
    assert job_view(client, b)["status"] == "queued" and not (tmp_path / "b.started").exists()

    other = finished(client, queue(client, "counted", counter=str(tmp_path / "n")))
    assert other["status"] == "succeeded"  # not starved by the held jobs

    assert client.delete(f"/jobs/{c}").json()["status"] == "cancelled"  # held: cancelled in place
    assert platform.executor.stats()["held"] == 1
    (tmp_path / "a.release").touch()
    assert finished(client, a)["status"] == "succeeded"
    until((tmp_path / "b.started").exists)
    (tmp_path / "b.release").touch()
    assert finished(client, b)["status"] == "succeeded"
    assert not (tmp_path / "c.started").exists()


def test_a_rate_limited_tool_holds_its_jobs(client: TestClient, tmp_path: Path) -> None:
    platform = platform_of(client)
    define(platform, "rare", "count", rate_limit={"calls": 1, "per_s": 3600})
    counter = str(tmp_path / "n")
    assert finished(client, queue(client, "rare", counter=counter))["status"] == "succeeded"
    second = queue(client, "rare", counter=counter)
    until(lambda: platform.executor.stats()["held"] == 1)
    assert job_view(client, second)["status"] == "queued"
    assert client.delete(f"/jobs/{second}").json()["status"] == "cancelled"
    assert platform.executor.stats()["held"] == 0 and lines(Path(counter)) == 1


@pytest.mark.anyio
async def test_a_rate_limit_spaces_the_starts(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", workers=1, ws_port=None)
    platform = Platform(settings)
    await platform.start()
    try:
        tool = Tool(
            name="paced",
            runtime={"kind": "python", "target": f"{TOOLS}:count"},
            policy={"isolation": "inline", "rate_limit": {"calls": 2, "per_s": 0.4}},
        )
        platform.tools.create(tool)
        submitted = [
            await platform.executor.submit("paced", {"counter": str(tmp_path / "n")})
            for _ in range(4)
        ]
        with anyio.fail_after(20):
            done = [await platform.executor.wait(job.id) for job in submitted]
        starts = sorted(job.started_at for job in done if job.started_at)
        assert len(starts) == 4 and all(job.status == JobStatus.SUCCEEDED for job in done)
        # a burst of 2, then one start per 0.2 s: the 4th starts 0.4 s after the 1st at least
        assert starts[3] - starts[0] >= timedelta(seconds=0.35)
    finally:
        await platform.close()


def test_a_job_queued_past_its_maximum_age_expires_unrun(
    client: TestClient, tmp_path: Path
) -> None:
    platform = platform_of(client)
    define(platform, "busy", "hold", concurrency=1, max_age_s=0.3)
    a = queue(client, "busy", folder=str(tmp_path), name="a")
    until((tmp_path / "a.started").exists)
    b = queue(client, "busy", folder=str(tmp_path), name="b")
    until(lambda: job_view(client, b)["status"] == "failed")  # while a still runs
    expired = job_view(client, b)
    assert expired["error"].startswith("expired: still queued")
    assert "0.3s" in expired["error"] and expired["started_at"] is None
    assert expired["dead_letter"]["reason"] == "expired" and expired["attempts"] == 0
    (tmp_path / "a.release").touch()
    assert finished(client, a)["status"] == "succeeded"
    assert not (tmp_path / "b.started").exists()


# -- recovery after a crash ------------------------------------------------------------------


@pytest.mark.anyio
async def test_recovery_retries_expires_and_dead_letters(
    tmp_path: Path, database_url: str, started: Callable[..., Any]
) -> None:
    """What a crashed server left: a running job with an attempt left runs again, one without
    fails as interrupted, a queued job older than TOOLRUN_MAX_JOB_AGE_S expires unrun."""
    engine = make_engine(database_url)
    upgrade(engine)
    define(ToolStore(engine), "again", "count", retry={"max_attempts": 2, "backoff_s": 0})
    define(ToolStore(engine), "once", "count")
    store = JobStore(engine)
    left_running = {
        name: Job(
            tool_id=name,
            arguments={"counter": str(tmp_path / name)},
            status=JobStatus.RUNNING,
            started_at=utcnow(),
            attempts=1,
        )
        for name in ("again", "once")
    }
    stale = Job(
        tool_id="once",
        arguments={"counter": str(tmp_path / "stale")},
        created_at=utcnow() - timedelta(hours=2),
    )
    for job in [*left_running.values(), stale]:
        store.add(job)
    engine.dispose()

    platform: Platform = await started(max_job_age_s=3600)
    with anyio.fail_after(20):
        rerun = await platform.executor.wait(left_running["again"].id)
        expired = await platform.executor.wait(stale.id)
    assert rerun.status == JobStatus.SUCCEEDED and rerun.attempts == 2
    assert lines(tmp_path / "again") == 1  # the second attempt (the first one "crashed")
    interrupted = await platform.executor.get(left_running["once"].id)
    assert interrupted.status == JobStatus.FAILED and interrupted.error == INTERRUPTED
    assert interrupted.dead_letter_reason == DeadLetterReason.INTERRUPTED
    assert expired.status == JobStatus.FAILED and expired.error is not None
    assert expired.error.startswith("expired") and "3600s" in expired.error
    assert expired.dead_letter_reason == DeadLetterReason.EXPIRED
    assert not (tmp_path / "stale").exists()
    dead = await platform.executor.dead_letters()
    assert {job.id for job in dead} == {interrupted.id, stale.id}


@pytest.mark.anyio
async def test_a_job_stopped_by_a_shutdown_runs_again_after_the_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import toolrun.execution.local as local

    monkeypatch.setattr(local, "SHUTDOWN_GRACE_S", 0.1)
    settings = Settings(data_dir=tmp_path / "data", workers=1, ws_port=None)
    first = Platform(settings)
    await first.start()
    define(first, "long", "hold", retry={"max_attempts": 2, "backoff_s": 0})
    job = await first.executor.submit("long", {"folder": str(tmp_path), "name": "a"})
    await eventually((tmp_path / "a.started").exists)
    await first.close()  # the call is stopped after the grace period
    stopped = first.jobs.get(job.id)
    assert stopped.status == JobStatus.QUEUED and stopped.attempts == 1
    assert stopped.error == f"attempt 1 failed: {INTERRUPTED}"

    (tmp_path / "a.release").touch()
    second = Platform(settings)
    await second.start()
    try:
        with anyio.fail_after(20):
            done = await second.executor.wait(job.id)
        assert done.status == JobStatus.SUCCEEDED and done.attempts == 2
    finally:
        await second.close()


def test_the_second_migration_keeps_existing_jobs(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0001")
        old_row = {
            "id": "00000000-0000-0000-0000-000000000001",
            "tool_id": "t",
            "arguments": {"x": 1},
            "status": "succeeded",
            "attempts": 1,
            "created_at": utcnow(),
        }
        with engine.begin() as conn:
            conn.execute(insert(jobs_table).values(**old_row))
    except Exception:
        engine.dispose()
        raise
    try:
        upgrade(engine)
        job = JobStore(engine).get(old_row["id"])
        assert job.status == JobStatus.SUCCEEDED and job.arguments == {"x": 1}
        assert job.idempotency_key is None and job.dead_letter_reason is None
    finally:
        engine.dispose()


# -- progress --------------------------------------------------------------------------------


def test_progress_reaches_the_seed_websocket_between_its_two_messages(
    client: TestClient, tmp_path: Path
) -> None:
    define(platform_of(client), "stepper", "steps")
    go = tmp_path / "go"
    with client.websocket_connect("/tool") as ws:
        ws.send_json({"tool_id": "stepper", "input_data": {"n": 3, "go": str(go)}})
        accepted = ws.receive_json()
        assert accepted == {"success": True, "uuid": accepted["uuid"]}
        go.touch()
        messages = [ws.receive_json()]
        while "output" not in messages[-1] and "error" not in messages[-1]:
            messages.append(ws.receive_json())
    uuid = accepted["uuid"]
    *reports, last = messages
    assert last == {"success": True, "uuid": uuid, "output": {"result": "done"}}
    assert all(set(m) == {"success", "uuid", "progress"} and m["uuid"] == uuid for m in reports)
    assert [m["progress"]["fraction"] for m in reports] == [1 / 3, 2 / 3, 1.0]
    assert reports[0]["progress"]["message"] == "step 1 of 3"
    assert reports[0]["progress"]["data"] == {"step": 1} and reports[0]["progress"]["at"]
    assert job_view(client, uuid)["progress"]["fraction"] == 1.0


def test_the_events_websocket_streams_a_jobs_lifecycle(client: TestClient, tmp_path: Path) -> None:
    define(platform_of(client), "stepper", "steps")
    go = tmp_path / "go"
    job_id = queue(client, "stepper", n=2, go=str(go))
    with client.websocket_connect(f"/jobs/{job_id}/events") as ws:
        events = [ws.receive_json()]
        assert events[0]["event"] == "snapshot" and events[0]["uuid"] == job_id
        go.touch()
        while events[-1]["event"] != "finished":
            events.append(ws.receive_json())
    kinds = [event["event"] for event in events]
    assert kinds.count("progress") == 2
    if events[0]["status"] == "queued":
        assert kinds.index("running") < kinds.index("progress")
    final = events[-1]
    assert final["status"] == "succeeded" and final["job"]["output"] == {"result": "done"}
    assert final["job"]["progress"]["fraction"] == 1.0

    with client.websocket_connect(f"/jobs/{job_id}/events") as ws:  # after the end
        assert [ws.receive_json()["event"] for _ in range(2)] == ["snapshot", "finished"]

    with client.websocket_connect("/jobs/no-such-job/events") as ws:
        error = ws.receive_json()
    assert error["event"] == "error" and error["error"]["type"] == "not_found"


def test_the_events_stream_speaks_sse_too(client: TestClient, tmp_path: Path) -> None:
    platform = platform_of(client)
    define(platform, "stepper", "steps")
    go = tmp_path / "go"
    job_id = queue(client, "stepper", n=2, go=str(go))

    def release_once_listened() -> None:  # the test client answers a stream in one piece
        until(lambda: platform.executor.feed.watched(job_id))
        go.touch()

    releaser = threading.Thread(target=release_once_listened)
    releaser.start()
    with client.stream("GET", f"/jobs/{job_id}/events") as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        text = "".join(reply.iter_text())
    releaser.join()
    blocks = [block.split("\n") for block in text.strip().split("\n\n")]
    kinds = [block[0].removeprefix("event: ") for block in blocks]
    data = [json.loads(block[1].removeprefix("data: ")) for block in blocks]
    assert kinds[0] == "snapshot" and kinds[-1] == "finished" and kinds.count("progress") == 2
    assert [d["event"] for d in data] == kinds
    assert data[-1]["job"]["status"] == "succeeded"
    assert_error(client.get("/jobs/no-such-job/events"), 404, "not_found")


@pytest.mark.anyio
async def test_an_inline_tool_reports_progress_from_its_thread(tmp_path: Path) -> None:
    platform = Platform(Settings(data_dir=tmp_path / "data", workers=1, ws_port=None))
    await platform.start()
    try:
        tool = Tool(
            name="inline_steps",
            runtime={"kind": "python", "target": f"{TOOLS}:steps"},
            policy={"isolation": "inline"},
        )
        platform.tools.create(tool)
        go = tmp_path / "go"
        job = await platform.executor.submit("inline_steps", {"n": 4, "go": str(go)})
        seen: list[dict[str, Any]] = []

        async def watch() -> None:
            async for event in platform.executor.events(job.id):
                seen.append(event)

        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            await eventually(lambda: bool(seen))  # listening
            go.touch()
        assert [e["progress"]["fraction"] for e in seen if e["event"] == "progress"] == [
            0.25,
            0.5,
            0.75,
            1.0,
        ]
        final = await platform.executor.get(job.id)
        assert final.progress is not None and final.progress["message"] == "step 4 of 4"
    finally:
        await platform.close()


def test_report_checks_its_arguments_and_does_nothing_outside_a_job() -> None:
    progress.report(0.5, "half", files=3)  # no job: nothing happens
    progress.report()
    with pytest.raises(ValueError, match="from 0 to 1"):
        progress.report(1.5)
    with pytest.raises(TypeError, match="number"):
        progress.report("half")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="JSON"):
        progress.report(data=object())
    with pytest.raises(ValueError, match="limit"):
        progress.report(blob="x" * 20_000)
    assert progress.parse({"fraction": 0.5, "extra": 1}) == {
        "fraction": 0.5,
        "message": None,
        "data": {"extra": 1},
    }
    assert progress.parse({"fraction": "lots"}) is None
    assert progress.parse(["not", "a", "dict"]) is None


def test_the_token_bucket_allows_a_burst_then_an_even_rate() -> None:
    from toolrun.execution.limits import TokenBucket
    from toolrun.registry.tool import RateLimit

    bucket = TokenBucket(RateLimit(calls=2, per_s=1.0), now=0.0)
    assert bucket.take(0.0) == 0 and bucket.take(0.0) == 0  # the burst
    assert bucket.take(0.0) == pytest.approx(0.5)  # then one token per 0.5 s
    assert bucket.take(0.25) == pytest.approx(0.25)
    assert bucket.take(0.5) == 0
    bucket.refund()  # a start that did not happen gives its token back
    assert bucket.take(0.5) == 0
    assert bucket.take(100.0) == 0 and bucket.take(100.0) == 0  # never more than the burst
    assert bucket.take(100.0) > 0
