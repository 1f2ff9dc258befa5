"""``POST /search``: tools ranked for a natural-language query, optionally filtered."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, Field

from toolrun.errors import ToolNotFound
from toolrun.platform import Platform
from toolrun.registry.formats import to_seed
from toolrun.registry.tool import Tool
from toolrun.retrieval.index import Mode
from toolrun.server.deps import get_platform
from toolrun.server.shapes import Family, parse_family_filter

MAX_K = 100
router = APIRouter(tags=["search"])


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=4096, description="What the tool should do.")
    filter: dict[str, Any] | None = Field(
        default=None, description="Mongo-style filter (seed or toolrun field names)."
    )
    k: int = Field(default=10, ge=1, le=MAX_K, description="How many tools to return.")
    mode: Mode = Field(default="hybrid", description="hybrid (default), bm25 or dense.")


def ranked_tools(
    platform: Platform,
    query: str,
    k: int,
    raw_filter: Any = None,
    *,
    family: Family = "tool",
    mode: Mode = "hybrid",
) -> list[tuple[Tool, dict[str, Any]]]:
    """The best tools for ``query`` with their scores (for the routes and ``/execute``)."""
    where = parse_family_filter(raw_filter, family) if raw_filter else None
    found = []
    for hit in platform.retrieval.search(query, k, where, mode=mode):
        try:
            tool = platform.tools.get(hit.tool_id)
        except ToolNotFound:  # deleted since
            continue
        scores = {"score": hit.score, **hit.parts}
        found.append((tool, scores))
    return found


@router.post("/search", summary="Tools ranked for a query (BM25 + embeddings), filterable")
def search(
    body: SearchRequest = Body(
        openapi_examples={
            "weather": {"value": {"query": "what's the weather in Paris", "k": 5}},
            "filtered": {"value": {"query": "add numbers", "filter": {"tool_search_tags": "math"}}},
        }
    ),
    platform: Platform = Depends(get_platform),
) -> dict[str, Any]:
    found = ranked_tools(platform, body.query, body.k, body.filter, mode=body.mode)
    return {
        "results": [
            {
                "tool_id": tool.id,
                "score": scores["score"],
                "scores": {"bm25": scores["bm25"], "dense": scores["dense"]},
                "tool": to_seed(tool, "tool"),
            }
            for tool, scores in found
        ]
    }
