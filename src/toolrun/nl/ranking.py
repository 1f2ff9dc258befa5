"""Which of the retrieved tools fits a prompt, without an LLM.

Candidates come from a :class:`Retriever` (the platform's search index when it has one, else
:class:`OverlapRetriever`, word overlap over the store's tools). :func:`rank_candidates` orders
them by how well their words match the prompt's, each word weighted by how few of the candidates
use it (IDF over the candidates: ``find`` in every tool's name decides nothing, ``movie`` in one
decides a lot), then by session use and whether the prompt supplies every required argument.

Whether the best one *fits* at all is :func:`fit_score` (its absolute evidence) plus its lead
over the runner-up, against :data:`DEFAULT_MIN_FIT`:

- *coverage*: the share of the prompt's words the tool's definition uses, topical words
  weighing 1, words common to any tool (``calculate``, ``value``, ``time``) 0.3, chat (``please``,
  ``I want``) nothing; a word inside a value (a name, a number, a quoted text) counts only when
  the tool uses it; the tool's name words count double;
- *name share*: half the share of the tool's own name words the prompt uses;
- *arguments*: the share of its required arguments the extractor found in the prompt;
- *lead*: among several candidates, four times the best one's ranking lead over the next.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from toolrun.errors import ToolNotFound
from toolrun.nl.extract import Extraction, _stem, extract_arguments, words
from toolrun.nl.extract.mentions import find_mentions
from toolrun.nl.extract.text import wordset
from toolrun.nl.sessions import Turn, session_boost
from toolrun.registry.query import parse_filter
from toolrun.registry.tool import DOCUMENT_FIELDS, Tool
from toolrun.storage.tool_store import ToolStore

log = logging.getLogger(__name__)

# Calibrated on the dev half of BFCL v4 (see bench/nl.py and
# tests/test_execute.py::test_the_fit_threshold_separates_bfcl_cases).
DEFAULT_MIN_FIT = 1.4
NAME_SHARE = 0.5
LEAD = 4.0
COMMON_WEIGHT = 0.3
Hit = tuple[str, float, dict[str, Any]]

FUNCTION_WORDS = wordset(
    """
    a an the of to in on at for by with from and or is are be was were it its this that
    these those what which who whom how do does did please me my i you your we our us can could
    would should will shall as into about than then so if but not no yes there here im id ill
    ive eg e g
    """
)
# Chat around a request: it says nothing about which tool is meant.
FILLER = wordset(
    """
    want wanted like need needs help hi hey hello thanks thank something someone
    interested know let bored really also just maybe kind sort able might may must ok okay sure
    go going got tell me mine one some thing things stuff right now new good nice great all
    any same again
    """
)
# Words most tools' definitions use: they decide little.
COMMON = wordset(
    """
    calculate calculation compute get find retrieve fetch search list show display determine
    estimate provide perform run execute analyze analysis info information data detail details
    result results value values number numbers amount total given specific certain particular
    based using use used type kind level current latest old first last next previous time times
    date day days year years month week hour minute rate ratio percent percentage average mean
    high low large small big long short best top most least many much more less make create
    generate build set update change add remove delete check view see look give take put
    point case way part name names id system user request function tool return returns service
    option options default parameter input output format text string
    """
)
# Words that mean the same thing to a tool's definition.
SYNONYMS = (
    "find search look lookup locate discover explore seek browse",
    "buy purchase",
    "book reserve reservation booking",
    "film movie",
    "song track music tune",
    "cancel delete remove",
    "modify edit update change",
    "price cost",
    "car vehicle",
    "hotel accommodation lodging",
)
VALUE_KINDS = frozenset(
    {"name", "quoted", "code", "email", "url", "path", "number", "list", "formula"}
    | {"date", "datetime", "time", "month"}
)


def _canonical_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for group in SYNONYMS:
        first, *rest = (_stem(w) for w in group.split())
        table.update({w: first for w in rest})
    return table


_CANONICAL = _canonical_table()
_COMMON = frozenset(_CANONICAL.get(_stem(w), _stem(w)) for w in COMMON)
_FILLER = frozenset(_stem(w) for w in FILLER) - set(_CANONICAL.values())


@lru_cache(maxsize=8192)
def terms(text: str) -> frozenset[str]:
    """The words of ``text`` that can match a tool: stemmed, synonyms merged, without
    function words."""
    return frozenset(
        _CANONICAL.get(_stem(w), _stem(w))
        for w in words(text)
        if w not in FUNCTION_WORDS and len(w) > 1
    )


def content_words(text: str) -> frozenset[str]:
    """:func:`terms` without chat words."""
    return terms(text) - _FILLER


@lru_cache(maxsize=512)
def prompt_terms(prompt: str) -> tuple[frozenset[str], frozenset[str]]:
    """The prompt's words outside values, and the words inside its values (names, numbers,
    quoted texts, dates), chat words dropped from both."""
    plain = prompt
    inside = []
    for m in sorted(find_mentions(prompt, datetime.now(UTC)), key=lambda m: -m.start):
        if m.kind in VALUE_KINDS:
            inside.append(m.text)
            plain = plain[: m.start] + " " + plain[m.end :]
    return frozenset(content_words(plain)), frozenset(content_words(" ".join(inside)))


def tool_terms(tool: Tool) -> tuple[frozenset[str], frozenset[str]]:
    """The words a tool's definition offers (name, namespace, tags, description, parameter
    names, descriptions and enum values), and those of its name alone."""
    parts = [tool.name, tool.namespace or "", tool.description, *tool.tags]
    for name, spec in (tool.input_schema.get("properties") or {}).items():
        parts.append(name)
        if isinstance(spec, Mapping):
            parts.append(str(spec.get("description") or ""))
            parts.extend(str(v) for v in spec.get("enum") or ())
    named = terms(f"{tool.name} {tool.namespace or ''}")
    return terms(" ".join(parts)), named


def coverage(prompt: str, tool: Tool) -> float:
    """The weighted share of the prompt's words the tool's definition uses, in ``[0, 1]``."""
    plain, inside = prompt_terms(prompt)
    offered, named = tool_terms(tool)
    hits = total = 0.0
    for word in plain | inside:
        weight = COMMON_WEIGHT if word in _COMMON else 1.0
        if word not in offered:
            if word in plain:
                total += weight
            continue
        total += weight
        hits += weight * (2.0 if word in named else 1.0)
    return min(1.0, hits / total) if total else 0.0


def name_share(prompt: str, tool: Tool) -> float:
    """The share of the tool's own name words (``calculate``-like ones aside) in the prompt."""
    _, named = tool_terms(tool)
    topical = named - _COMMON or named
    if not topical:
        return 0.0
    plain, inside = prompt_terms(prompt)
    return len(topical & (plain | inside)) / len(topical)


def argument_share(tool: Tool, extraction: Extraction) -> float:
    """The share of the tool's required arguments the prompt supplies (1 with none)."""
    props = tool.input_schema.get("properties") or {}
    required = [r for r in tool.input_schema.get("required") or () if r in props]
    if not required:
        return 1.0
    return sum(r in extraction.arguments for r in required) / len(required)


def fit_score(prompt: str, tool: Tool, extraction: Extraction | None = None) -> float:
    """How well ``tool`` alone fits ``prompt``: coverage + half the name share + the share of
    required arguments found (see the module docstring); at most 2.5."""
    if extraction is None:
        extraction = extract_arguments(prompt, tool.input_schema)
    return (
        coverage(prompt, tool)
        + NAME_SHARE * name_share(prompt, tool)
        + argument_share(tool, extraction)
    )


def relevance(prompt: str, tool: Tool) -> float:
    """:func:`fit_score` without the arguments: what the word-overlap retriever ranks by."""
    return coverage(prompt, tool) + NAME_SHARE * name_share(prompt, tool)


def match_scores(prompt: str, tools: Sequence[Tool]) -> list[float]:
    """Each tool's match with the prompt, its words weighted by IDF over ``tools`` (name words
    double), as a share of the most a tool could score."""
    query = content_words(prompt)
    if not query or not tools:
        return [0.0 for _ in tools]
    offered = [tool_terms(t) for t in tools]
    df: dict[str, int] = {}
    for words_of, _ in offered:
        for word in words_of & query:
            df[word] = df.get(word, 0) + 1
    n = len(tools)
    best = len(query) * math.log(1 + n) or 1.0
    out = []
    for words_of, named in offered:
        score = sum(
            math.log(1 + n / df[w]) * (2.0 if w in named else 1.0) for w in query & words_of
        )
        out.append(score / best)
    return out


class Retriever(Protocol):
    """Anything that ranks tools for a query (the retrieval package's ``ToolIndex``)."""

    def search(
        self, query: str, k: int, filter: Mapping[str, Any] | None = None
    ) -> Sequence[Hit]: ...


class OverlapRetriever:
    """The fallback retriever: :func:`relevance` over every tool matching the filter."""

    def __init__(self, store: ToolStore) -> None:
        self.store = store

    def search(self, query: str, k: int, filter: Mapping[str, Any] | None = None) -> list[Hit]:
        where = parse_filter(dict(filter), roots=DOCUMENT_FIELDS) if filter else None
        tools = self.store.query(where, limit=5000)
        scored = []
        for t in tools:
            score = relevance(query, t)
            scored.append((t.id, score, {"overlap": score}))
        scored.sort(key=lambda hit: (-hit[1], hit[0]))
        return scored[:k]


class IndexRetriever:
    """The platform's search service (``toolrun.retrieval``) as a :class:`Retriever`: its hits
    (objects with ``tool_id`` and ``score``) as tuples, the filter parsed first; when it
    fails, :class:`OverlapRetriever` answers alone."""

    def __init__(self, service: Any, store: ToolStore) -> None:
        self.service = service
        self.fallback = OverlapRetriever(store)

    def search(self, query: str, k: int, filter: Mapping[str, Any] | None = None) -> list[Hit]:
        where = parse_filter(dict(filter), roots=DOCUMENT_FIELDS) if filter else None
        found: dict[str, Hit] = {}
        try:
            for hit in self.service.search(query, k, where):
                parts = {
                    name: float(getattr(hit, name))
                    for name in ("bm25", "dense")
                    if isinstance(getattr(hit, name, None), int | float)
                }
                found[hit.tool_id] = (hit.tool_id, float(hit.score), parts)
        except Exception:
            log.warning("tool search failed; ranking by word overlap only", exc_info=True)
        for hit in self.fallback.search(query, k, filter):
            found.setdefault(hit[0], hit)
        return list(found.values())


def one_version_each(
    store: ToolStore,
    tools: list[tuple[Tool, float, dict[str, Any]]],
    history: Sequence[Turn] = (),
) -> list[tuple[Tool, float, dict[str, Any]]]:
    """Versions of one tool are one candidate: the version the session last used, else the
    one its bare name resolves to (the stable one, as ``POST /tools/{name}/invoke`` would
    run), else the best-retrieved one. Several versions would otherwise tie and cancel each
    other's lead."""
    used = [turn.tool_id for turn in reversed(history) if turn.tool_id]
    by_name: dict[str, list[int]] = {}
    for i, (tool, _, _) in enumerate(tools):
        by_name.setdefault(tool.name, []).append(i)
    drop: set[int] = set()
    for name, places in by_name.items():
        if len(places) < 2:
            continue
        try:
            default = store.get(name).id
        except ToolNotFound:
            default = None
        preferred = [*used, default]
        keep = next((i for want in preferred for i in places if tools[i][0].id == want), places[0])
        drop.update(i for i in places if i != keep)
    return [entry for i, entry in enumerate(tools) if i not in drop]


def rank_candidates(
    store: ToolStore,
    retriever: Retriever,
    prompt: str,
    history: Sequence[Turn],
    filter: Mapping[str, Any] | None,
    k: int,
    *,
    seen: dict[str, tuple[Tool, Extraction]] | None = None,
) -> list[dict[str, Any]]:
    """The top ``k`` tools for ``prompt`` as answer rows (``function``, ``score``, ``fit``,
    ``lead``, ``match``, ``arguments``, ``retrieval``, ``session_boost``, ``parts``), best
    first. ``score`` orders them; ``fit`` (the tool's :func:`fit_score` plus its ``lead``) is
    what the router compares with ``min_fit``. ``seen`` receives each ranked tool and the
    arguments read for it, so that the chosen one is not looked up and read again."""
    hits = retriever.search(prompt, max(k, 5), filter)
    tools: list[tuple[Tool, float, dict[str, Any]]] = []
    for tool_id, score, parts in hits:
        try:
            tools.append((store.get(tool_id), score, parts))
        except ToolNotFound:
            continue
    tools = one_version_each(store, tools, history)
    matches = match_scores(prompt, [t for t, _, _ in tools])
    ranked: list[dict[str, Any]] = []
    for (tool, score, parts), match in zip(tools, matches, strict=True):
        extraction = extract_arguments(prompt, tool.input_schema)
        if seen is not None:
            seen[tool.id] = (tool, extraction)
        arguments = argument_share(tool, extraction)
        boost = session_boost(history, tool.id)
        complete = not extraction.missing
        ranked.append(
            {
                "function": tool.id,
                "score": round(match + boost + (0.05 if complete else 0.0) + 0.02 * arguments, 4),
                "fit": fit_score(prompt, tool, extraction),
                "match": round(match, 4),
                "arguments": round(arguments, 4),
                "retrieval": round(float(score), 4) if math.isfinite(score) else None,
                "session_boost": round(boost, 4),
                "parts": dict(parts),
            }
        )
    ranked.sort(key=lambda c: (-float(c["score"]), -float(c["retrieval"] or 0), str(c["function"])))
    for i, row in enumerate(ranked):
        others = [float(r["score"]) for j, r in enumerate(ranked) if j != i]
        lead = max(0.0, float(row["score"]) - max(others)) if others else 0.0
        row["lead"] = round(lead, 4)
        row["fit"] = round(float(row["fit"]) + LEAD * lead, 4)
    return ranked[:k]
