"""Job semantics of the Celery executor (``docs/jobs.md``), on real services: two API
processes and two ``toolrun worker`` processes sharing PostgreSQL and Redis (skipped locally
without them, required when ``CI=true``).

Retries with backoff, the dead-letter list and its retry over either replica, progress and
lifecycle events relayed to the replica that did not queue the job, a tool's concurrency
limit held across both workers, a rate limit, and maximum job age. Nothing sleeps for luck:
tools wait for files the test creates, and every wait polls a condition with a deadline.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.cluster import REDIS_URL, Cluster, cluster, require
from toolrun.execution.jobs import Job, utcnow

pytestmark = [pytest.mark.celery, pytest.mark.e2e, pytest.mark.timeout(120)]


def tool(name: str, function: str, **policy: Any) -> dict[str, Any]:
    return {"name": name, "runtime": {"kind": "python", "target": f"job_tools:{function}"}} | (
        {"policy": policy} if policy else {}
    )


TOOLS = [
    tool("flaky", "flaky_after", retry={"max_attempts": 2, "backoff_s": 0.5}),
    tool("doomed", "flaky", retry={"max_attempts": 2, "backoff_s": 0.05}),
    tool("stepper", "steps"),
    tool("solo", "exclusive", concurrency=1),
    tool("perishable", "hold", concurrency=1, max_age_s=1.5),
    tool("counter", "count"),
    tool("metered", "count", rate_limit={"calls": 1, "per_s": 0.5}),
]
GLOBAL_MAX_AGE_S = 600


@pytest.fixture(scope="module")
def scale_out(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require("PostgreSQL", "Redis")
    env = {"TOOLRUN_MAX_JOB_AGE_S": str(GLOBAL_MAX_AGE_S)}
    with cluster(tmp_path_factory.mktemp("semantics"), extra_env=env) as running:
        running.start_api()
        running.start_api()
        running.start_workers(2, concurrency=4, workers=2)
        for spec in TOOLS:
            reply = httpx.post(f"{running.api.url}/tool", json=spec)
            assert reply.status_code == 201, reply.text
        yield running


def urls(c: Cluster) -> tuple[str, str]:
    return c.apis[0].url, c.apis[1].url


def queue(api: str, tool_id: str, **arguments: Any) -> str:
    reply = httpx.post(f"{api}/jobs", json={"tool_id": tool_id, "arguments": arguments})
    assert reply.status_code == 202, reply.text
    return str(reply.json()["uuid"])


def finished(api: str, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = httpx.get(
        f"{api}/jobs/{job_id}", params={"wait_s": 30}, timeout=40
    ).json()
    assert job["status"] not in ("queued", "running"), job
    return job


async def stream(api: str, job_id: str, then: Path | None = None) -> list[dict[str, Any]]:
    """Every event of ``/jobs/{job_id}/events`` on ``api`` (a WebSocket); ``then`` is created
    once the snapshot has come (the stream listens from then on)."""
    ws_url = api.replace("http://", "ws://")
    async with websockets.connect(f"{ws_url}/jobs/{job_id}/events", open_timeout=30) as ws:
        events = [json.loads(await ws.recv())]
        assert events[0]["event"] == "snapshot", events
        if then is not None:
            then.touch()
        async for message in ws:
            events.append(json.loads(message))
    assert events[-1]["event"] == "finished", events
    return events


def until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {timeout}s"
        time.sleep(0.01)


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.anyio
async def test_a_failed_attempt_is_retried_after_its_backoff(
    scale_out: Cluster, tmp_path: Path
) -> None:
    first, second = urls(scale_out)
    counter, go = tmp_path / "counter", tmp_path / "go"
    job_id = queue(first, "flaky", counter=str(counter), failures=1, go=str(go))
    events = await stream(second, job_id, then=go)  # the replica that did not queue it

    kinds = [event["event"] for event in events]
    expected = ["snapshot", "running", "retrying", "running", "finished"]
    if events[0]["status"] == "running":  # its first attempt began before the stream listened
        expected.remove("running")
    assert kinds == expected, events
    retrying = next(event for event in events if event["event"] == "retrying")
    assert retrying["uuid"] == job_id and retrying["attempt"] == 1
    assert "failure 1 of 1" in retrying["error"]
    second_start = [event for event in events if event["event"] == "running"][-1]
    assert second_start["attempt"] == 2
    assert moment(second_start["at"]) >= moment(retrying["next_attempt_at"])
    job = events[-1]["job"]
    assert job["status"] == "succeeded" and job["attempts"] == 2, job
    assert job["output"] == {"attempt": 2} and job["dead_letter"] is None
    assert counter.read_text().count("x") == 2


def test_an_exhausted_job_is_dead_lettered_and_retried_from_either_replica(
    scale_out: Cluster, tmp_path: Path
) -> None:
    first, second = urls(scale_out)
    counter = tmp_path / "counter"
    job_id = queue(first, "doomed", counter=str(counter), failures=2)
    dead = finished(second, job_id)
    assert dead["status"] == "failed" and dead["attempts"] == 2, dead
    assert dead["dead_letter"]["reason"] == "exhausted" and "failure 2 of 2" in dead["error"]

    listed = httpx.get(f"{second}/jobs/dead-letter", params={"tool_id": "doomed"}).json()
    assert job_id in [job["uuid"] for job in listed]
    retried = httpx.post(f"{second}/jobs/{job_id}/retry")
    assert retried.status_code == 202, retried.text
    assert retried.json()["retry_of"] == job_id and retried.json()["attempts"] == 0
    again = finished(first, retried.json()["uuid"])
    assert again["status"] == "succeeded" and again["output"] == {"attempt": 3}, again
    twice = httpx.post(f"{first}/jobs/{job_id}/retry")
    assert twice.status_code == 409 and twice.json()["error"]["type"] == "not_dead_lettered"
    listed = httpx.get(f"{first}/jobs/dead-letter", params={"tool_id": "doomed"}).json()
    assert job_id not in [job["uuid"] for job in listed]

    other = queue(second, "doomed", counter=str(tmp_path / "other"), failures=9)
    assert finished(first, other)["dead_letter"]["reason"] == "exhausted"
    forgotten = httpx.delete(f"{first}/jobs/dead-letter/{other}")
    assert forgotten.status_code == 200 and forgotten.json()["dead_letter"] is None
    listed = httpx.get(f"{second}/jobs/dead-letter", params={"tool_id": "doomed"}).json()
    assert other not in [job["uuid"] for job in listed]


@pytest.mark.anyio
async def test_progress_reaches_the_other_replicas_streams(
    scale_out: Cluster, tmp_path: Path
) -> None:
    first, second = urls(scale_out)
    go = tmp_path / "go"
    job_id = queue(first, "stepper", n=3, go=str(go))
    events = await stream(second, job_id, then=go)
    kinds = [event["event"] for event in events]
    assert kinds[0] == "snapshot", kinds
    # The job may already run when the stream opens (the snapshot says so) or start after.
    started_before = events[0]["job"]["status"] == "running"
    assert started_before or "running" in kinds, events[0]
    reports = [event for event in events if event["event"] == "progress"]
    assert reports and all(event["uuid"] == job_id for event in reports)
    assert started_before or kinds.index("running") < kinds.index("progress")
    assert reports[-1]["progress"]["fraction"] == 1.0  # thinned maybe, never the last one
    assert reports[-1]["progress"]["data"] == {"step": 3} and reports[-1]["progress"]["at"]
    job = events[-1]["job"]
    assert job["status"] == "succeeded" and job["progress"]["fraction"] == 1.0

    # The seed WebSocket of the other replica: progress messages between its two messages.
    seed_go = tmp_path / "seed-go"
    async with websockets.connect(f"{scale_out.apis[1].ws_url}/tool", open_timeout=30) as ws:
        request = {"tool_id": "stepper", "input_data": {"n": 2, "go": str(seed_go)}}
        await ws.send(json.dumps(request))
        messages = [json.loads(await ws.recv())]
        seed_go.touch()
        messages += [json.loads(message) async for message in ws]
    assert messages[0] == {"success": True, "uuid": messages[0]["uuid"]}
    assert messages[-1]["output"] == {"result": "done"}, messages
    assert [m["progress"]["fraction"] for m in messages[1:-1]][-1:] == [1.0], messages


def test_a_concurrency_of_one_holds_across_both_workers(scale_out: Cluster, tmp_path: Path) -> None:
    first, second = urls(scale_out)
    job_ids = [
        queue((first, second)[i % 2], "solo", folder=str(tmp_path), work_s=0.3) for i in range(4)
    ]
    jobs = [finished(first, job_id) for job_id in job_ids]
    assert all(job["status"] == "succeeded" for job in jobs), jobs
    assert (tmp_path / "overlaps").read_text().split() == ["1"] * 4
    spans = sorted((moment(job["started_at"]), moment(job["finished_at"])) for job in jobs)
    for (_, ended), (began, _) in itertools.pairwise(spans):
        assert began >= ended, spans  # one call at a time, whichever worker ran it
    assert all(job["attempts"] == 1 for job in jobs)  # held back, not failed


def test_a_rate_limit_spaces_the_starts_across_workers(scale_out: Cluster, tmp_path: Path) -> None:
    first, second = urls(scale_out)
    counter = str(tmp_path / "counter")
    job_ids = [queue((first, second)[i % 2], "metered", counter=counter) for i in range(3)]
    jobs = [finished(second, job_id) for job_id in job_ids]
    assert all(job["status"] == "succeeded" and job["attempts"] == 1 for job in jobs), jobs
    # A full bucket of one token, refilled every 0.5 s: the third start comes a second or more
    # after the first token could be taken (no earlier than the first job was created).
    starts = sorted(moment(job["started_at"]) for job in jobs)
    assert starts[-1] - moment(jobs[0]["created_at"]) >= timedelta(seconds=1.0), starts


def test_a_job_held_past_its_maximum_age_expires_unrun(scale_out: Cluster, tmp_path: Path) -> None:
    first, second = urls(scale_out)
    holder = queue(first, "perishable", folder=str(tmp_path), name="a")
    until(lambda: (tmp_path / "a.started").exists())
    waiting = queue(second, "perishable", folder=str(tmp_path), name="b")
    assert httpx.get(f"{first}/jobs/{waiting}").json()["status"] == "queued"
    job = finished(second, waiting)  # held at the concurrency limit until its age passed
    assert job["status"] == "failed" and job["attempts"] == 0, job
    assert job["error"].startswith("expired: still queued") and "maximum age 1.5s" in job["error"]
    assert job["dead_letter"]["reason"] == "expired"
    assert not (tmp_path / "b.started").exists()
    (tmp_path / "a.release").touch()
    assert finished(first, holder)["status"] == "succeeded"


def test_a_worker_does_not_run_a_job_older_than_the_maximum_age(
    scale_out: Cluster, tmp_path: Path
) -> None:
    """A job stored long ago whose task comes only now (the settings' maximum age applies)."""
    from celery import Celery

    from toolrun.execution.celery_app import TASK_NAME
    from toolrun.storage.engine import make_engine
    from toolrun.storage.job_store import JobStore

    counter = tmp_path / "counter"
    old = Job(
        tool_id="counter",
        arguments={"counter": str(counter)},
        created_at=utcnow() - timedelta(seconds=GLOBAL_MAX_AGE_S + 60),
    )
    engine = make_engine(scale_out.database_url, pool_size=1)
    try:
        JobStore(engine).add(old)
    finally:
        engine.dispose()
    # A bare app sends the task (the toolrun app would register its task in this process).
    queue_name = scale_out.env["TOOLRUN_CELERY_QUEUE"]
    sender = Celery("probe", broker=REDIS_URL, set_as_current=False)
    try:
        sender.send_task(TASK_NAME, args=[old.id], task_id=old.id, queue=queue_name)
    finally:
        sender.close()
    job = finished(scale_out.apis[1].url, old.id)
    assert job["status"] == "failed" and job["dead_letter"]["reason"] == "expired", job
    assert f"maximum age {GLOBAL_MAX_AGE_S}s" in job["error"] and job["attempts"] == 0
    assert not counter.exists()
