"""The worker pool against hostile tools: raising, exiting, crashing, looping, hoarding.

Every failure must come back as an isError Response, and the pool must keep serving.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from tests.processes import eventually, is_dead
from toolrun.errors import InfrastructureError
from toolrun.execution.pool import WorkerPool

FIXTURES = Path(__file__).parent / "fixtures"
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def tool(name: str) -> str:
    return f"hostile_tools:{name}"


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    async with WorkerPool(2, extra_sys_path=[FIXTURES]) as pool:
        yield pool


@pytest.fixture
async def solo() -> AsyncIterator[WorkerPool]:
    async with WorkerPool(1, extra_sys_path=[FIXTURES]) as pool:
        yield pool


async def test_calls_functions_coroutines_and_class_attributes(pool: WorkerPool) -> None:
    assert (await pool.call(tool("ping"), {}, 10)).structured == {"result": "pong"}
    assert (await pool.call(tool("add"), {"a": 2, "b": 3}, 10)).structured == {"result": 5}
    assert (await pool.call(tool("async_add"), {"a": 2, "b": 3}, 10)).structured == {"result": 5}
    assert (await pool.call(tool("Tools.triple"), {"x": 2}, 10)).structured == {"result": 6}
    assert (await pool.call(tool("Tools.double"), {"x": 2}, 10)).structured == {"result": 4}
    echoed = await pool.call(tool("echo"), {"text": "héllo ✓", "n": [1, None]}, 10)
    assert echoed.structured == {"text": "héllo ✓", "n": [1, None]}
    pid = (await pool.call(tool("getpid"), {}, 10)).structured
    assert pid is not None and pid["result"] != os.getpid()


async def test_modules_stay_imported_in_a_worker(solo: WorkerPool) -> None:
    first = await solo.call(tool("count"), {}, 10)
    second = await solo.call(tool("count"), {}, 10)
    assert (first.structured, second.structured) == ({"result": 1}, {"result": 2})


async def test_an_exception_is_an_error_result_with_a_short_frame(solo: WorkerPool) -> None:
    pid = await solo.call(tool("getpid"), {}, 10)
    response = await solo.call(tool("raise_value_error"), {"message": "bad input"}, 10)
    assert response.is_error
    first, *rest = response.text.splitlines()
    assert first == "ValueError: bad input"
    assert rest == [rest[0]] and "hostile_tools.py:" in rest[0] and "raise_value_error" in rest[0]
    exited = await solo.call(tool("sys_exit"), {}, 10)
    assert exited.is_error and exited.text.startswith("SystemExit: 2")
    assert await solo.call(tool("getpid"), {}, 10) == pid  # the same worker survived both
    assert solo.stats().restarts == 0


async def test_unloadable_targets_are_error_results(pool: WorkerPool) -> None:
    missing = await pool.call(tool("no_such_function"), {}, 10)
    assert missing.is_error and "AttributeError" in missing.text
    module = await pool.call("no_such_module_here:f", {}, 10)
    assert module.is_error and "ModuleNotFoundError" in module.text
    assert pool.stats().restarts == 0


async def test_unserializable_results_become_their_string(pool: WorkerPool) -> None:
    response = await pool.call(tool("unserializable"), {}, 10)
    assert not response.is_error
    assert response.structured == {"thing": "<opaque thing>", "values": [1, 2]}


async def test_content_items_survive_the_trip(pool: WorkerPool) -> None:
    response = await pool.call(tool("rich"), {}, 10)
    assert [item["type"] for item in response.to_dict()["content"]] == ["text", "image"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [("exit_hard", "exit code 3"), ("segfault", "SIGSEGV"), ("kill_self", "SIGKILL")],
)
async def test_a_dying_worker_is_reported_and_replaced(
    solo: WorkerPool, name: str, reason: str
) -> None:
    before = solo.pids()
    response = await solo.call(tool(name), {}, 10)
    assert response.is_error
    assert "worker process died" in response.text and reason in response.text
    after = await solo.call(tool("getpid"), {}, 10)
    assert not after.is_error and after.structured is not None
    assert [after.structured["result"]] != before
    assert all(is_dead(pid) for pid in before)
    assert solo.stats().restarts == 1


async def test_a_timeout_kills_the_worker_and_its_children(
    solo: WorkerPool, tmp_path: Path
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    worker = solo.pids()
    response = await solo.call(tool("spin_with_child"), {"pid_file": str(pid_file)}, 1.5)
    assert response.is_error and response.text == "timed out after 1.5s"
    grandchild = int(pid_file.read_text())
    await eventually(lambda: is_dead(grandchild) and all(map(is_dead, worker)))
    assert not (await solo.call(tool("ping"), {}, 10)).is_error
    assert solo.stats().restarts == 1


async def test_an_infinite_loop_times_out(solo: WorkerPool) -> None:
    started = time.monotonic()
    response = await solo.call(tool("spin"), {}, 0.2)
    assert response.text == "timed out after 0.2s"
    assert time.monotonic() - started < 5
    assert (await solo.call(tool("ping"), {}, 10)).structured == {"result": "pong"}


async def test_an_oversized_result_is_refused(tmp_path: Path) -> None:
    async with WorkerPool(1, extra_sys_path=[FIXTURES], max_result_bytes=1000) as small:
        response = await small.call(tool("big_result"), {"size": 5000}, 10)
        assert response.is_error and "too large" in response.text
        assert not (await small.call(tool("big_result"), {"size": 10}, 10)).is_error


async def test_arguments_must_be_json(pool: WorkerPool) -> None:
    response = await pool.call(tool("echo"), {"value": object()}, 10)
    assert response.is_error and "JSON" in response.text


async def test_at_most_size_calls_run_at_once(pool: WorkerPool, tmp_path: Path) -> None:
    release = tmp_path / "release"
    started = [tmp_path / f"started-{i}" for i in range(3)]
    async with anyio.create_task_group() as group:
        results: list[int] = []

        async def one(marker: Path) -> None:
            args = {"started": str(marker), "release": str(release)}
            response = await pool.call(tool("block_until"), args, 30)
            assert response.structured is not None
            results.append(response.structured["result"])

        for marker in started:
            group.start_soon(one, marker)
        await eventually(lambda: sum(m.exists() for m in started) == 2)
        stats = pool.stats()
        assert (stats.busy, stats.waiting) == (2, 1)
        assert sum(m.exists() for m in started) == 2
        release.touch()
    assert all(m.exists() for m in started)
    assert len(results) == 3 and set(results) <= set(pool.pids())
    assert pool.stats().restarts == 0 and pool.stats().busy == 0


async def test_cancelling_the_caller_kills_the_call(solo: WorkerPool, tmp_path: Path) -> None:
    marker, release = tmp_path / "started", tmp_path / "never"
    args = {"started": str(marker), "release": str(release)}
    async with anyio.create_task_group() as group:
        group.start_soon(solo.call, tool("block_until"), args, 60)
        await eventually(lambda: marker.exists() and marker.read_text() != "")
        worker = int(marker.read_text())
        group.cancel_scope.cancel()
    await eventually(lambda: is_dead(worker))
    after = await solo.call(tool("getpid"), {}, 10)
    assert after.structured is not None and after.structured["result"] != worker
    assert solo.stats().restarts == 1


async def test_a_worker_killed_while_idle_is_replaced_quietly(solo: WorkerPool) -> None:
    (victim,) = solo.pids()
    os.kill(victim, 9)
    await eventually(lambda: victim not in solo.pids())
    response = await solo.call(tool("getpid"), {}, 10)
    assert not response.is_error and response.structured != {"result": victim}
    assert solo.stats().restarts == 1


async def test_workers_are_recycled_after_max_tasks() -> None:
    async with WorkerPool(1, extra_sys_path=[FIXTURES], max_tasks_per_worker=2) as pool:
        pids = [(await pool.call(tool("getpid"), {}, 10)).structured for _ in range(3)]
        assert pids[0] == pids[1] != pids[2]
        assert (pool.stats().recycled, pool.stats().restarts) == (1, 0)


async def test_spawn_context_and_a_scrubbed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLRUN_SECRETS__API_KEY", "s3cret")
    monkeypatch.setenv("UNRELATED_SETTING", "visible")
    async with WorkerPool(1, mp_context="spawn", extra_sys_path=[FIXTURES]) as pool:
        secret = await pool.call(tool("env_value"), {"name": "TOOLRUN_SECRETS__API_KEY"}, 30)
        other = await pool.call(tool("env_value"), {"name": "UNRELATED_SETTING"}, 30)
        assert (secret.structured, other.structured) == ({"result": None}, {"result": "visible"})
        assert "exit code 3" in (await pool.call(tool("exit_hard"), {}, 30)).text
        assert not (await pool.call(tool("ping"), {}, 30)).is_error


async def test_close_leaves_no_worker_processes() -> None:
    pool = WorkerPool(2, extra_sys_path=[FIXTURES])
    await pool.start()
    pids = pool.pids()
    assert len(pids) == 2 and not any(map(is_dead, pids))
    await pool.close()
    assert all(map(is_dead, pids))
    with pytest.raises(InfrastructureError):
        await pool.call(tool("ping"), {}, 10)


PARENT_SCRIPT = """
import asyncio, os, signal, sys
from pathlib import Path
from toolrun.execution.pool import WorkerPool

async def main(context, fixtures, folder):
    pool = WorkerPool(2, mp_context=context, extra_sys_path=[fixtures])
    await pool.start()
    markers = [Path(folder, name) for name in ("a", "b")]
    for marker in markers:
        args = {"started": str(marker), "release": str(Path(folder, "never"))}
        asyncio.create_task(pool.call("hostile_tools:block_until", args, 600))
    while not all(m.exists() and m.read_text() for m in markers):
        await asyncio.sleep(0.01)
    print(*pool.pids(), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
"""


@pytest.mark.parametrize("context", ["forkserver", "spawn"])
async def test_busy_workers_die_with_their_parent(tmp_path: Path, context: str) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT_SCRIPT)
    command = [sys.executable, str(script), context, str(FIXTURES), str(tmp_path)]
    # Files, not pipes: workers inherit the parent's stdout and would hold a pipe open.
    with (tmp_path / "out").open("w") as out, (tmp_path / "err").open("w") as err:
        returncode = subprocess.run(command, stdout=out, stderr=err, timeout=60).returncode
    assert returncode == -9, (tmp_path / "err").read_text()
    pids = [int(p) for p in (tmp_path / "out").read_text().split()]
    assert len(pids) == 2
    await eventually(lambda: all(map(is_dead, pids)))


async def test_a_trivial_call_costs_well_under_a_millisecond(solo: WorkerPool) -> None:
    for _ in range(50):
        await solo.call(tool("ping"), {}, 10)
    samples = []
    for _ in range(300):
        started = time.perf_counter()
        await solo.call(tool("ping"), {}, 10)
        samples.append(time.perf_counter() - started)
    samples.sort()
    assert samples[len(samples) // 2] < 0.005  # measured ~0.15 ms; generous for busy CI
