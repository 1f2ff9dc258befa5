"""The local executor through a started Platform: bounds, discovery at start-up, and changes
to a tool taking effect at once."""

from __future__ import annotations

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
