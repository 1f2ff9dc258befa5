"""SQLAlchemy table definitions. Alembic migrations in ``migrations/`` create them; keep the two
in step (a test compares them).

Each tool is stored whole as a JSON document (``doc``: JSONB on PostgreSQL, JSON text on
SQLite) that the Mongo-style filters query in the database; ``name``/``version``/``namespace``
are copied into columns for lookups and version resolution.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

JsonDoc = JSON().with_variant(JSONB(), "postgresql")

tools = Table(
    "tools",
    metadata,
    Column("id", String(300), primary_key=True),
    Column("name", String(128), nullable=False, index=True),
    Column("version", String(64), nullable=True),
    Column("namespace", String(128), nullable=True, index=True),
    Column("doc", JsonDoc, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tool_id", String(300), nullable=False, index=True),
    Column("arguments", JsonDoc, nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("result", JsonDoc, nullable=True),
    Column("error", Text, nullable=True),
    Column("timeout_s", Float, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    # 0002: job semantics (retries, idempotency keys, dead letters, progress)
    Column("idempotency_key", String(255), nullable=True),
    Column("request_hash", String(64), nullable=True),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("dead_letter_reason", String(16), nullable=True),
    Column("dead_lettered_at", DateTime(timezone=True), nullable=True, index=True),
    Column("retry_of", String(36), nullable=True),
    Column("progress", JsonDoc, nullable=True),
    # One job per key, whoever submits it first: the race between two submits is settled here.
    Index("ux_jobs_idempotency_key", "idempotency_key", unique=True),
)

# 0003: natural-language sessions, one row per turn of POST /execute
session_turns = Table(
    "session_turns",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(128), nullable=False, index=True),
    Column("prompt", Text, nullable=False),
    Column("tool_id", String(300), nullable=True),
    Column("arguments", JsonDoc, nullable=True),
    Column("status", String(32), nullable=False),
    Column("result", JsonDoc, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# 0004: the gateway's request log (GET /v1/logs), secrets redacted, bodies size-capped
gateway_log = Table(
    "gateway_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("key_id", String(64), nullable=False, index=True),
    Column("endpoint", String(64), nullable=False),
    Column("model", String(256), nullable=True),
    Column("mode", String(16), nullable=True),
    Column("stream", Boolean, nullable=False, default=False),
    Column("status", Integer, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("rounds", Integer, nullable=False, default=0),
    Column("error", Text, nullable=True),
    Column("request", JsonDoc, nullable=True),
    Column("response", JsonDoc, nullable=True),
)
