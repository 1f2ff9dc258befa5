"""Session history of ``POST /execute``: persisted turns, follow-ups, ranking boost.

A turn records the prompt, the tool chosen, its arguments, the status (``executed``,
``missing_arguments``, ``planned``, ``no_fit``) and the result. :func:`follow_up` reads the
last turn that chose a tool to resolve "same for Paris", "again with 5" or "now in
Fahrenheit" (the previous tool, its arguments, and what the new prompt changes);
:func:`session_boost` favours the tools a session has been using.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from toolrun.nl.extract import Extraction, extract_arguments
from toolrun.registry.tool import Tool
from toolrun.storage.errors import store_errors
from toolrun.storage.tables import session_turns

HISTORY_LIMIT = 50
FOLLOW_UP = re.compile(
    r"^\s*(?:(?:and\s+)?(?:the\s+)?same\b|again\b|now\b|and\s+(?:for|in|with|now)\b|"
    r"what\s+about\b|how\s+about\b|instead\b|also\b|repeat\b|do\s+it\b|this\s+time\b)",
    re.I,
)


@dataclass(frozen=True)
class Turn:
    session_id: str
    prompt: str
    status: str
    tool_id: str | None = None
    arguments: dict[str, Any] | None = None
    result: Any = None
    created_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "status": self.status,
            "function": self.tool_id,
            "arguments": self.arguments,
            "result": self.result,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


class SessionStore:
    """Turns in the ``session_turns`` table (SQLite or PostgreSQL), oldest first."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, turn: Turn) -> Turn:
        turn = Turn(**{**turn.__dict__, "created_at": turn.created_at or datetime.now(UTC)})
        with store_errors("save the session turn"), self.engine.begin() as conn:
            conn.execute(
                insert(session_turns).values(
                    session_id=turn.session_id,
                    prompt=turn.prompt,
                    tool_id=turn.tool_id,
                    arguments=turn.arguments,
                    status=turn.status,
                    result=turn.result,
                    created_at=turn.created_at,
                )
            )
        return turn

    def history(self, session_id: str, limit: int = HISTORY_LIMIT) -> list[Turn]:
        """The last ``limit`` turns of a session, oldest first."""
        stmt = (
            select(session_turns)
            .where(session_turns.c.session_id == session_id)
            .order_by(session_turns.c.id.desc())
            .limit(limit)
        )
        with store_errors("read the session"), self.engine.connect() as conn:
            rows = list(conn.execute(stmt))
        return [
            Turn(
                session_id=row.session_id,
                prompt=row.prompt,
                status=row.status,
                tool_id=row.tool_id,
                arguments=dict(row.arguments) if row.arguments is not None else None,
                result=row.result,
                created_at=row.created_at
                if row.created_at.tzinfo
                else row.created_at.replace(tzinfo=UTC),
            )
            for row in reversed(rows)
        ]

    def delete(self, session_id: str) -> int:
        """Forget a session; how many turns it had."""
        stmt = delete(session_turns).where(session_turns.c.session_id == session_id)
        with store_errors("delete the session"), self.engine.begin() as conn:
            return int(conn.execute(stmt).rowcount or 0)


def last_call(history: Sequence[Turn]) -> Turn | None:
    """The latest turn that chose a tool (executed, planned or waiting for arguments)."""
    return next((t for t in reversed(history) if t.tool_id is not None), None)


def is_follow_up(prompt: str) -> bool:
    return bool(FOLLOW_UP.match(prompt))


def follow_up(
    prompt: str, previous: Turn, tool: Tool, *, now: datetime | None = None
) -> Extraction | None:
    """The previous call with what ``prompt`` changes (``None`` if it is no follow-up).

    The prompt is read against the previous tool's schema; the values it names replace the
    previous ones ("same for Paris": the place; "now in Fahrenheit": the enum). A lone value
    the schema cannot place ("again with 5") replaces the previous argument of its type when
    there is exactly one such argument.
    """
    if not is_follow_up(prompt):
        return None
    found = extract_arguments(prompt, tool.input_schema, now=now)
    merged = dict(previous.arguments or {})
    changed = found.explicit()
    merged.update(changed)
    result = Extraction(
        arguments=merged,
        confidence={k: found.confidence.get(k, 0.8) for k in merged},
        evidence={
            k: found.evidence[k]
            if k in changed
            else {"source": "session", "text": "", "start": None, "end": None}
            for k in merged
        },
    )
    props: Mapping[str, Any] = tool.input_schema.get("properties") or {}
    result.missing = [
        r for r in tool.input_schema.get("required") or () if r in props and r not in merged
    ]
    return result


def session_boost(history: Sequence[Turn], tool_id: str, *, weight: float = 0.15) -> float:
    """A bonus for tools the session used, more for recent ones (at most ``weight``)."""
    bonus = 0.0
    for age, turn in enumerate(reversed(history[-10:])):
        if turn.tool_id == tool_id:
            bonus += weight * (0.5**age)
    return min(bonus, weight)


def describe(history: Sequence[Turn]) -> str:
    """Seed 000's ``context``: a short account of the session so far."""
    if not history:
        return "No previous interactions."
    lines = [f"Previous interactions ({len(history)}):"]
    for turn in history[-5:]:
        what = turn.tool_id or "no tool"
        lines.append(f"- {turn.prompt!r} -> {what} ({turn.status})")
    return "\n".join(lines)
