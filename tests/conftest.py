"""Shared fixtures: isolated settings, both database backends, a started platform."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolrun.config import Settings

PG_ADMIN_URL = os.environ.get(
    "TOOLRUN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() == "true"
TEST_PYTHON_MODULES = json.dumps(
    ["os", "hostile_tools", "gates", "job_tools", "toolrun.demo", "toolrun_fixture_pkg"]
)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No TOOLRUN_* variable of the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("TOOLRUN_") and key != "TOOLRUN_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("TOOLRUN_DATA_DIR", str(tmp_path / "data"))
    # The test tool modules a remote client may name as python targets (servers the tests
    # start get it too); tests of the refusal itself set an empty list.
    monkeypatch.setenv("TOOLRUN_REMOTE_PYTHON_MODULES", TEST_PYTHON_MODULES)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _postgres_unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"PostgreSQL is required when CI=true: {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin URL of a reachable PostgreSQL (skip locally, fail in CI)."""
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        _postgres_unavailable(f"{type(exc).__name__}: {exc}".splitlines()[0])
    return PG_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh database for one test, dropped afterwards."""
    from tests.cluster import fresh_database

    with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", workers=2, ws_port=None)


def require_sandbox() -> None:
    """Skip a test that needs the bubblewrap sandbox when this machine lacks it; with
    CI=true, fail instead (CI must exercise the sandbox)."""
    from toolrun.config import SandboxSettings
    from toolrun.sandbox.probe import probe_with

    report = probe_with(SandboxSettings())
    if report.mode == "bubblewrap":
        return
    if IN_CI:
        pytest.fail(f"the bubblewrap sandbox is required when CI=true: {report.reason}")
    pytest.skip(f"no bubblewrap sandbox here: {report.reason}")


@pytest.fixture
def sandbox_available() -> None:
    require_sandbox()
