"""MCP-safe tool names, and back.

MCP names are 1-128 of ``A-Z a-z 0-9 _ . -``; a toolrun id is ``name`` or ``name:version``
(``weather_lookup:v1.0.0-stable``), and names are already MCP-safe. So the MCP name of an id
is the id with ``:`` written ``__`` (``weather_lookup__v1.0.0-stable``); one longer than 128
characters is cut and ends in ``_`` and 8 hex digits of the id's hash. Two ids that would meet
on one name (a tool literally named ``a__v1.0.0`` beside ``a:v1.0.0``) are told apart the same
way, the second in id order taking the hash. The way back is the :class:`NameTable` of the
tools listed, never parsing: an MCP name means exactly the tool it was listed for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

MAX_LENGTH = 128
SEPARATOR = "__"


def _hashed(tool_id: str, base: str) -> str:
    digest = hashlib.sha256(tool_id.encode("utf-8")).hexdigest()[:8]
    return f"{base[: MAX_LENGTH - 9]}_{digest}"


def mcp_name(tool_id: str) -> str:
    """The MCP name of a toolrun id (without regard to clashes; see :class:`NameTable`)."""
    name = tool_id.replace(":", SEPARATOR)
    return name if len(name) <= MAX_LENGTH else _hashed(tool_id, name)


class NameTable:
    """MCP names of a set of tool ids, both ways; unique by construction."""

    def __init__(self, tool_ids: Iterable[str] = ()) -> None:
        self.to_id: dict[str, str] = {}
        self.to_name: dict[str, str] = {}
        for tool_id in sorted(tool_ids):
            name = mcp_name(tool_id)
            if name in self.to_id:
                name = _hashed(tool_id, name)
            self.to_id[name] = tool_id
            self.to_name[tool_id] = name

    def __len__(self) -> int:
        return len(self.to_id)
