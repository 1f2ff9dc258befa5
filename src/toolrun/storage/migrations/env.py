"""Alembic environment: toolrun passes the connection in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from toolrun.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - toolrun always passes one
    raise RuntimeError("run migrations through toolrun.storage.engine.upgrade()")

context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
