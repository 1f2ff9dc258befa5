"""One typed settings object (prefix ``TOOLRUN_``), built once and passed in.

Nothing else in toolrun reads the environment: ``create_app(settings)`` and the executor take
this object, and tests build their own.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("toolrun", appauthor=False))


class Settings(BaseSettings):
    """Every knob of toolrun. Environment: ``TOOLRUN_<FIELD>`` (nested: ``__``)."""

    model_config = SettingsConfigDict(
        env_prefix="TOOLRUN_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(default_factory=default_data_dir, description="SQLite file and state.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///<data_dir>/toolrun.db. "
        "PostgreSQL: postgresql+psycopg://user@host/db",
    )
    host: str = Field(default="127.0.0.1", description="Interface to listen on.")
    port: int = Field(default=8000, description="REST port (answers WebSocket routes too).")
    ws_port: int | None = Field(default=8765, description="Second port for the seed-002 WebSocket.")
    workers: int = Field(default=2, ge=1, le=256, description="Worker processes of the executor.")
    concurrency: int | None = Field(
        default=None, ge=1, le=4096, description="Jobs run at once; default max(8, 4 x workers)."
    )
    queue_size: int = Field(default=10_000, ge=1, description="Bound of the executor's queue.")
    default_timeout_s: float = Field(default=30.0, gt=0, description="Per-call time limit.")
    max_timeout_s: float = Field(default=3600.0, gt=0, description="Largest per-tool timeout.")
    tool_cache_ttl_s: float = Field(
        default=1.0,
        ge=0,
        description="How long the executor reuses a resolved tool; this process's own writes "
        "clear it at once, other processes' writes are seen within this time (0: never cache).",
    )
    external_registry_url: str | None = Field(
        default=None,
        description="Base URL of the registry that /tool/register/{id} fetches from "
        "(another toolrun, or any server answering GET {base}/tool/{id}).",
    )
    secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Credentials by name for http tools: TOOLRUN_SECRETS__NAME=value.",
    )
    secret_hosts: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Hosts each secret may be sent to (and no other): "
        "TOOLRUN_SECRET_HOSTS__NAME='[\"api.example.com\"]'.",
    )
    functions_dirs: list[Path] = Field(
        default_factory=list,
        description="Folders whose modules' public functions are registered (JSON list).",
    )
    functions_packages: list[str] = Field(
        default_factory=list,
        description="Packages whose modules' public functions are registered (JSON list).",
    )
    demo: bool = Field(default=False, description="Register the demo tools at start-up.")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'toolrun.db'}"


def settings_table() -> str:
    """The README's configuration table, generated from :class:`Settings` (a test keeps the
    README in step)."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            default = {"data_dir": "per-user data dir"}.get(name, "empty")
        else:
            default = "none" if field.default is None else str(field.default)
        rows.append(f"| `TOOLRUN_{name.upper()}` | {default} | {field.description or ''} |")
    return "\n".join(rows)
