"""Assertions on HTTP answers shared by the API test modules."""

from __future__ import annotations

from typing import Any


def assert_error(reply: Any, status: int, type_: str, *needles: str) -> dict[str, Any]:
    """``reply`` is toolrun's error body with this status and type, its message naming each
    of ``needles``."""
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message", "detail"}
    assert body["error"]["type"] == type_
    for needle in needles:
        assert needle in body["error"]["message"], body["error"]["message"]
    return dict(body["error"])
