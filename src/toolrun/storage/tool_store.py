"""Persistent tools: create, resolve, update, delete and query (filters run in the database)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from toolrun.errors import (
    ConcurrentUpdate,
    InvalidDefinition,
    ToolAlreadyExists,
    ToolNotFound,
)
from toolrun.registry.ids import ToolRef
from toolrun.registry.tool import Tool, build_tool
from toolrun.storage.errors import store_errors
from toolrun.storage.tables import tools

if TYPE_CHECKING:
    from toolrun.registry.query import Filter

_GET = select(tools).where(tools.c.id == bindparam("b_id"))

# Fields a partial update (PUT) may not change: they make up the id.
IDENTITY_FIELDS = ("name", "version")


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ToolStore:
    """Tools in the ``tools`` table. Every method is one transaction."""

    def __init__(self, engine: Engine, *, cache_size: int = 4096) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        # Parsed tools by id, valid while the stored updated_at is the same: validating a
        # document (pydantic + the JSON-Schema meta-check) costs far more than reading it.
        self._parsed: dict[str, Tool] = {}
        self._cache_size = cache_size
        self._listeners: list[Callable[[str], None]] = []

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(tool_id)`` after every write this store makes (caches subscribe)."""
        self._listeners.append(listener)

    def _changed(self, tool_id: str) -> None:
        for listener in self._listeners:
            listener(tool_id)

    def _row_to_tool(self, row: Any) -> Tool:
        updated_at = _utc(row.updated_at)
        cached = self._parsed.get(row.id)
        if cached is not None and cached.updated_at == updated_at:
            return cached
        doc = dict(row.doc)
        doc["created_at"] = _utc(row.created_at)
        doc["updated_at"] = updated_at
        tool = Tool.from_document(doc)
        if len(self._parsed) >= self._cache_size:
            self._parsed.clear()
        self._parsed[row.id] = tool
        return tool

    def create(self, tool: Tool) -> Tool:
        now = datetime.now(UTC)
        with store_errors(f"store tool {tool.id!r}"):
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        insert(tools).values(
                            id=tool.id,
                            name=tool.name,
                            version=tool.version,
                            namespace=tool.namespace,
                            doc=tool.to_document(),
                            created_at=now,
                            updated_at=now,
                        )
                    )
            except IntegrityError:
                raise ToolAlreadyExists(
                    f"tool {tool.id!r} already exists; use PUT /tool/{tool.id} to change it"
                ) from None
        self._changed(tool.id)
        return tool.model_copy(update={"created_at": now, "updated_at": now})

    def upsert(self, tool: Tool) -> Tool:
        """Create, or replace every field of an existing tool with the same id."""
        with self.engine.begin() as conn:
            exists = conn.execute(select(tools.c.id).where(tools.c.id == tool.id)).first()
        if exists is None:
            try:
                return self.create(tool)
            except ToolAlreadyExists:
                pass  # lost a race with another writer: fall through to replace
        return self._replace(tool)

    def _replace(self, tool: Tool, *, expected_updated_at: datetime | None = None) -> Tool:
        now = datetime.now(UTC)
        stmt = update(tools).where(tools.c.id == tool.id)
        if expected_updated_at is not None:
            stmt = stmt.where(tools.c.updated_at == expected_updated_at)
        with store_errors(f"store tool {tool.id!r}"), self.engine.begin() as conn:
            result = conn.execute(
                stmt.values(namespace=tool.namespace, doc=tool.to_document(), updated_at=now)
            )
            if result.rowcount == 0:
                exists = conn.execute(_GET, {"b_id": tool.id}).first() is not None
                if exists:
                    raise ConcurrentUpdate(
                        f"{tool.id} changed while this update was being made; read it and retry"
                    )
                raise ToolNotFound(f"Tool not registered: {tool.id}")
            row = conn.execute(select(tools).where(tools.c.id == tool.id)).one()
        self._changed(tool.id)
        return self._row_to_tool(row)

    def resolve_id(self, ref: str) -> str:
        """The stored id a user reference means (see :mod:`toolrun.registry.ids`)."""
        with self.engine.connect() as conn:
            return self._resolve(conn, ref)

    @staticmethod
    def _resolve(conn: Connection, ref: str) -> str:
        parsed = ToolRef.parse(ref)
        if parsed.version and parsed.version not in ("latest", "stable"):
            hit = conn.execute(select(tools.c.id).where(tools.c.id == ref)).first()
            if hit is not None:
                return str(hit.id)
        versions = [
            row.version
            for row in conn.execute(select(tools.c.version).where(tools.c.name == parsed.name))
        ]
        if not versions:
            raise ToolNotFound(f"Tool not registered: {ref}")
        version = parsed.resolve(versions)
        return f"{parsed.name}:{version}" if version else parsed.name

    def get(self, ref: str) -> Tool:
        """The tool a reference means; an exact id costs one query."""
        with self.engine.connect() as conn:
            row = conn.execute(_GET, {"b_id": ref}).first()
            if row is None:
                tool_id = self._resolve(conn, ref)
                row = conn.execute(select(tools).where(tools.c.id == tool_id)).first()
        if row is None:  # deleted between resolve and read
            raise ToolNotFound(f"Tool not registered: {ref}")
        return self._row_to_tool(row)

    def update(
        self,
        ref: str,
        changes: Mapping[str, Any] | Callable[[Tool], Mapping[str, Any]],
        *,
        check: Callable[[Tool, Tool], None] | None = None,
    ) -> Tool:
        """Apply a partial update (top-level fields replaced) and validate the result whole.

        ``changes`` may be a function of the stored tool (one read serves both); ``check(new,
        current)`` may veto the result. The write is conditional on the tool not having
        changed since it was read; a concurrent update is a :class:`ConcurrentUpdate` (409)."""
        current = self.get(ref)
        if callable(changes):
            changes = changes(current)
        bad = [f for f in IDENTITY_FIELDS if f in changes]
        if any(changes[f] != getattr(current, f) for f in bad):
            raise InvalidDefinition(
                f"cannot change {' or '.join(bad)} of {current.id!r}: "
                "register a new version instead"
            )
        data = current.model_dump(exclude={"created_at", "updated_at"})
        data.update(changes)
        updated = build_tool(data, what=f"update of {current.id!r}")
        if check is not None:
            check(updated, current)
        return self._replace(updated, expected_updated_at=current.updated_at)

    def delete(self, ref: str) -> str:
        tool_id = self.resolve_id(ref)
        with self.engine.begin() as conn:
            result = conn.execute(delete(tools).where(tools.c.id == tool_id))
        if result.rowcount == 0:
            raise ToolNotFound(f"Tool not registered: {ref}")
        self._changed(tool_id)
        return tool_id

    def query(
        self, where: Filter | None = None, *, limit: int | None = None, offset: int = 0
    ) -> list[Tool]:
        """Tools matching a parsed filter, ordered by id; the filter runs in the database."""
        stmt = select(tools).order_by(tools.c.id)
        if where is not None:
            from toolrun.storage.filters import compile_filter

            stmt = stmt.where(compile_filter(where, tools.c.doc, self.dialect))
        if offset:
            stmt = stmt.offset(offset)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.engine.connect() as conn:
            return [self._row_to_tool(row) for row in conn.execute(stmt)]

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(tools)).scalar_one())
