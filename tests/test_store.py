"""The store suite, run on SQLite and PostgreSQL: tools and jobs survive, ids resolve."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from toolrun.errors import InvalidDefinition, NotFound, ToolAlreadyExists, ToolNotFound
from toolrun.execution.jobs import Job, JobStatus, utcnow
from toolrun.registry.tool import Tool
from toolrun.response import Response
from toolrun.storage.engine import make_engine, upgrade
from toolrun.storage.job_store import INTERRUPTED, JobStore
from toolrun.storage.tables import metadata
from toolrun.storage.tool_store import ToolStore


@pytest.fixture
def engine(database_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def tools(engine) -> ToolStore:  # type: ignore[no-untyped-def]
    return ToolStore(engine)


@pytest.fixture
def jobs(engine) -> JobStore:  # type: ignore[no-untyped-def]
    return JobStore(engine)


def weather(version: str | None, **extra: object) -> Tool:
    fields: dict[str, object] = {"description": f"weather {version}", **extra}
    return Tool(name="weather_lookup", version=version, **fields)  # type: ignore[arg-type]


def test_migrations_create_the_declared_tables(engine) -> None:  # type: ignore[no-untyped-def]
    inspector = inspect(engine)
    for table in metadata.sorted_tables:
        stored = {c["name"] for c in inspector.get_columns(table.name)}
        assert stored == set(table.columns.keys()), table.name
    assert "alembic_version" in inspector.get_table_names()


def test_migrations_are_idempotent(engine) -> None:  # type: ignore[no-untyped-def]
    upgrade(engine)  # a second run changes nothing and does not fail
    assert {"tools", "jobs"} <= set(inspect(engine).get_table_names())


def test_create_get_roundtrip_keeps_every_field(tools: ToolStore) -> None:
    tool = Tool(
        name="adder",
        version="v1.2.3",
        namespace="math",
        description="adds",
        tags=["math", "utils"],
        input_schema={
            "type": "object",
            "properties": {"a": {"type": "integer"}},
            "required": ["a"],
        },
        output_schema={"type": "object"},
        default_params={"a": 1},
        metadata={"owner": {"team": "core"}, "cost": 0.5},
        runtime={"kind": "python", "target": "toolrun.demo.functions:weather_lookup"},
        policy={"timeout_s": 3, "isolation": "inline"},
    )
    created = tools.create(tool)
    assert created.created_at is not None
    fetched = tools.get("adder:v1.2.3")
    assert fetched.model_dump(exclude={"created_at", "updated_at"}) == tool.model_dump(
        exclude={"created_at", "updated_at"}
    )
    assert fetched.created_at is not None and fetched.created_at.tzinfo is not None


def test_duplicate_id_is_a_conflict_and_keeps_the_first(tools: ToolStore) -> None:
    tools.create(weather("v1.0.0-stable"))
    with pytest.raises(ToolAlreadyExists, match="already exists"):
        tools.create(weather("v1.0.0-stable", description="second"))
    assert tools.get("weather_lookup:v1.0.0-stable").description == "weather v1.0.0-stable"


def test_version_resolution(tools: ToolStore) -> None:
    for version in ["v1.0.0-stable", "v1.2.0", "v2.0.0-beta", "v0.9.0-stable"]:
        tools.create(weather(version))
    assert tools.resolve_id("weather_lookup") == "weather_lookup:v1.2.0"
    assert tools.resolve_id("weather_lookup:stable") == "weather_lookup:v1.2.0"
    assert tools.resolve_id("weather_lookup:latest") == "weather_lookup:v2.0.0-beta"
    assert tools.resolve_id("weather_lookup:v1.0.0") == "weather_lookup:v1.0.0-stable"
    assert tools.resolve_id("weather_lookup:v2.0.0-beta") == "weather_lookup:v2.0.0-beta"
    with pytest.raises(ToolNotFound, match=r"stored versions: .*v2\.0\.0-beta"):
        tools.resolve_id("weather_lookup:v3.0.0")
    with pytest.raises(ToolNotFound, match="not registered"):
        tools.resolve_id("nope")


def test_unversioned_tool_wins_a_bare_name(tools: ToolStore) -> None:
    tools.create(Tool(name="binary-increment-tool"))
    tools.create(Tool(name="binary-increment-tool", version="v2.0.0"))
    assert tools.get("binary-increment-tool").version is None
    assert tools.get("binary-increment-tool:latest").version == "v2.0.0"


def test_only_prereleases_means_no_stable(tools: ToolStore) -> None:
    tools.create(weather("v2.0.0-beta"))
    with pytest.raises(ToolNotFound, match="no stable version"):
        tools.get("weather_lookup")
    assert tools.get("weather_lookup:latest").version == "v2.0.0-beta"


def test_update_validates_whole_and_loses_nothing_on_error(tools: ToolStore) -> None:
    tools.create(weather("v1.0.0-stable", tags=["weather"]))
    updated = tools.update("weather_lookup", {"description": "better"})
    assert updated.description == "better" and updated.tags == ["weather"]
    assert updated.updated_at is not None and updated.created_at is not None
    assert updated.updated_at >= updated.created_at
    with pytest.raises(InvalidDefinition, match="input_schema"):
        tools.update("weather_lookup", {"input_schema": {"type": "nonsense"}, "description": "x"})
    with pytest.raises(InvalidDefinition, match="register a new version"):
        tools.update("weather_lookup", {"version": "v9.0.0"})
    assert tools.get("weather_lookup").description == "better"


def test_delete(tools: ToolStore) -> None:
    tools.create(weather("v1.0.0-stable"))
    assert tools.delete("weather_lookup") == "weather_lookup:v1.0.0-stable"
    with pytest.raises(ToolNotFound):
        tools.get("weather_lookup")
    with pytest.raises(ToolNotFound):
        tools.delete("weather_lookup")


def test_upsert_replaces(tools: ToolStore) -> None:
    tools.upsert(weather("v1.0.0", tags=["a"]))
    tools.upsert(weather("v1.0.0", tags=["b"]))
    assert tools.get("weather_lookup:v1.0.0").tags == ["b"]
    assert tools.count() == 1


def test_tools_survive_a_new_engine(database_url: str) -> None:
    first = make_engine(database_url)
    upgrade(first)
    ToolStore(first).create(weather("v1.0.0-stable"))
    first.dispose()
    second = make_engine(database_url)
    assert ToolStore(second).get("weather_lookup").version == "v1.0.0-stable"
    second.dispose()


def test_job_lifecycle_and_recovery(jobs: JobStore) -> None:
    queued = Job(tool_id="t", arguments={"x": 1})
    running = Job(tool_id="t", arguments={}, status=JobStatus.RUNNING, started_at=utcnow())
    done = Job(
        tool_id="t",
        arguments={},
        status=JobStatus.SUCCEEDED,
        result=Response.from_value({"ok": True}),
        finished_at=utcnow(),
    )
    for job in (queued, running, done):
        jobs.add(job)
    requeued = jobs.recover()
    assert [j.id for j in requeued] == [queued.id]
    interrupted = jobs.get(running.id)
    assert interrupted.status == JobStatus.FAILED and interrupted.error == INTERRUPTED
    assert interrupted.result is not None and interrupted.result.is_error
    kept = jobs.get(done.id)
    assert kept.status == JobStatus.SUCCEEDED
    assert kept.result is not None and kept.result.structured == {"ok": True}


def test_job_compare_and_set(jobs: JobStore) -> None:
    job = Job(tool_id="t", arguments={})
    jobs.add(job)
    cancelled = job.evolve(status=JobStatus.CANCELLED)
    assert jobs.save_if(cancelled, JobStatus.QUEUED)
    assert not jobs.save_if(job.evolve(status=JobStatus.RUNNING), JobStatus.QUEUED)
    assert jobs.get(job.id).status == JobStatus.CANCELLED
    with pytest.raises(NotFound):
        jobs.get("no-such-job")


def test_a_result_holding_nul_is_stored_on_both_backends(jobs: JobStore) -> None:
    job = Job(
        tool_id="t",
        arguments={},
        status=JobStatus.SUCCEEDED,
        result=Response.from_value({"text": "a\x00b"}),
        finished_at=utcnow(),
    )
    jobs.add(job)
    stored = jobs.get(job.id)
    assert stored.result is not None and stored.result.structured is not None
    # PostgreSQL's JSONB cannot hold U+0000: its copy says U+FFFD; SQLite keeps it as it is.
    expected = "a\ufffdb" if jobs.engine.dialect.name == "postgresql" else "a\x00b"
    assert stored.result.structured == {"text": expected}
