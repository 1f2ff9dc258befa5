"""The local executor through a started Platform: bounds, discovery at start-up, and changes
to a tool taking effect at once."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from tests.processes import eventually
from toolrun.config import Settings
from toolrun.errors import QueueFull
from toolrun.execution.jobs import JobStatus
from toolrun.platform import Platform
from toolrun.registry.tool import Tool
from toolrun.response import Response

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    settings = Settings(
        data_dir=tmp_path / "data",
        workers=1,
        concurrency=1,
        queue_size=1,
        functions_dirs=[FIXTURES / "tool_folder"],
        ws_port=None,
    )
    platform = Platform(settings)
    await platform.start()
    yield platform
    await platform.close()


async def test_a_full_queue_is_refused_and_records_nothing(
    platform: Platform, tmp_path: Path
) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    blocker = Tool(
        name="blocker",
        runtime={
            "kind": "command",
            "command": [
                "sh",
                "-c",
                f"touch {started}; while [ ! -e {release} ]; do sleep 0.01; done",
            ],
        },
    )
    platform.tools.create(blocker)
    running = await platform.executor.submit("blocker", {})
    await eventually(started.exists)
    queued = await platform.executor.submit("blocker", {})  # fills the queue (size 1)
    before = len(platform.jobs.recent(limit=100))
    with pytest.raises(QueueFull, match="queue is full"):
        await platform.executor.submit("blocker", {})
    assert len(platform.jobs.recent(limit=100)) == before
    release.touch()
    with anyio.fail_after(20):
        assert (await platform.executor.wait(running.id)).status == JobStatus.SUCCEEDED
        assert (await platform.executor.wait(queued.id)).status == JobStatus.SUCCEEDED


async def test_folder_tools_are_registered_at_start_and_run_in_workers(platform: Platform) -> None:
    found = {tool.id for tool in platform.tools.query()}
    assert {"add", "compress_files", "double:v1.0.0-stable"} <= found
    job = await platform.executor.invoke("add", {"a": 2, "b": 3})
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result is not None and job.result.structured == {"result": 5}


async def test_an_update_takes_effect_at_once(platform: Platform) -> None:
    first = await platform.executor.invoke("add", {"a": 1, "b": 1})
    assert first.result is not None and first.result.structured == {"result": 2}
    platform.tools.update("add", {"default_params": {"b": 100}})
    second = await platform.executor.invoke("add", {"a": 1})
    assert second.result is not None and second.result.structured == {"result": 101}


async def test_a_result_holding_nul_is_answered_and_stored(platform: Platform) -> None:
    emit = "import json; print(json.dumps('a' + chr(0) + 'b'))"
    nul = Tool(name="nul", runtime={"kind": "command", "command": [sys.executable, "-c", emit]})
    platform.tools.create(nul)
    with anyio.fail_after(20):
        job = await platform.executor.invoke("nul", {})
    assert job.status == JobStatus.SUCCEEDED and job.result is not None
    assert job.result.structured == {"result": "a\x00b"}
    assert platform.jobs.get(job.id).status == JobStatus.SUCCEEDED


async def test_arguments_with_nul_are_refused_before_queueing(platform: Platform) -> None:
    from toolrun.errors import ArgumentsInvalid

    with pytest.raises(ArgumentsInvalid, match="U\\+0000"):
        await platform.executor.submit("add", {"a": 1, "b": 2, "c": "x\x00"})


async def test_recorder_flush_returns_under_steady_load() -> None:
    from toolrun.execution.jobs import Job
    from toolrun.execution.recorder import JobRecorder

    written: list[str] = []

    async def write(batch: list[Job]) -> None:
        await anyio.sleep(0.002)
        written.extend(job.id for job in batch)

    recorder = JobRecorder(write, window_s=0.001)
    stop = anyio.Event()

    async def produce() -> None:
        while not stop.is_set():
            recorder.record(Job(tool_id="t", arguments={}))
            await anyio.sleep(0.0005)

    async with anyio.create_task_group() as group:
        group.start_soon(produce)
        await anyio.sleep(0.02)
        first = Job(tool_id="t", arguments={})
        recorder.record(first)
        with anyio.fail_after(5):
            await recorder.flush()
        assert first.id in written
        stop.set()


async def test_recorder_keeps_the_good_records_of_a_failing_batch() -> None:
    from toolrun.execution.jobs import Job
    from toolrun.execution.recorder import JobRecorder

    written: list[str] = []
    bad = Job(tool_id="bad", arguments={})

    async def write(batch: list[Job]) -> None:
        if any(job.id == bad.id for job in batch):
            raise ValueError("cannot store this one")
        written.extend(job.id for job in batch)

    recorder = JobRecorder(write)
    good = [Job(tool_id="t", arguments={}) for _ in range(3)]
    for job in [good[0], bad, *good[1:]]:
        recorder.record(job)
    await recorder.flush()
    assert written == [job.id for job in good]
    assert recorder.unwritten(bad.id) is None


def test_tool_cache_ignores_a_read_that_raced_a_write() -> None:
    from toolrun.execution.tool_cache import ToolCache

    cache = ToolCache(ttl_s=60)
    old = Tool(name="t", description="old")
    generation = cache.generation  # a read starts ...
    cache.clear("t")  # ... a write lands and clears the cache ...
    cache.put("t", old, generation)  # ... and the read finishes with what it saw
    assert cache.get("t") is None
    cache.put("t", old, cache.generation)
    assert cache.get("t") is old


async def test_a_job_waiting_for_a_worker_is_queued_and_cancellable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one worker busy, the next Python job waits *queued* (not running); cancelling it
    means it never runs, and the busy one finishes normally."""
    monkeypatch.syspath_prepend(str(FIXTURES))  # workers import hostile_tools from there
    settings = Settings(data_dir=tmp_path / "data", workers=1, concurrency=4, ws_port=None)
    platform = Platform(settings)
    await platform.start()
    try:
        for name in ("block_until", "getpid"):
            target = f"hostile_tools:{name}"
            platform.tools.create(Tool(name=name, runtime={"kind": "python", "target": target}))
        started, release = tmp_path / "started", tmp_path / "release"
        args = {"started": str(started), "release": str(release)}
        busy = await platform.executor.submit("block_until", args)
        await eventually(started.exists)
        waiting = await platform.executor.submit("getpid", {})
        await eventually(lambda: waiting.id in platform.executor._calls)  # at the pool's door
        assert (await platform.executor.get(waiting.id)).status == JobStatus.QUEUED
        cancelled = await platform.executor.cancel(waiting.id)
        assert cancelled.status == JobStatus.CANCELLED
        release.touch()
        with anyio.fail_after(20):
            assert (await platform.executor.wait(busy.id)).status == JobStatus.SUCCEEDED
        stored = platform.jobs.get(waiting.id)
        assert stored.status == JobStatus.CANCELLED and stored.started_at is None
    finally:
        await platform.close()


def says_timed_out() -> Response:
    """A tool whose own error happens to read like a time limit."""
    return Response.error("timed out after 1s")


async def test_a_tool_saying_timed_out_is_failed_not_timed_out(platform: Platform) -> None:
    target = "tests.test_executor:says_timed_out"
    platform.tools.create(Tool(name="liar", runtime={"kind": "python", "target": target}))
    job = await platform.executor.invoke("liar", {})
    assert job.result is not None and job.result.text == "timed out after 1s"
    assert job.status == JobStatus.FAILED
    sleeper = Tool(
        name="sleeper",
        runtime={"kind": "command", "command": ["sleep", "30"]},
        policy={"timeout_s": 0.2},
    )
    platform.tools.create(sleeper)
    stopped = await platform.executor.invoke("sleeper", {})
    assert stopped.status == JobStatus.TIMED_OUT and stopped.error == "timed out after 0.2s"
