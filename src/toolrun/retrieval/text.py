"""The text of a tool that gets indexed, and the tokens BM25 sees.

Names are split on ``_``, ``.``, ``-``, ``/`` and camelCase (``getWeather_v2`` reads as ``get
Weather v2``); then the description, each parameter's name (split too), description and enum
values, and the tags. BM25's tokens are lowercased words less stopwords, each with its
Snowball stem beside it (``forecasts`` and ``forecasting`` both also read ``forecast``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from toolrun.registry.tool import Tool

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[_.\-/:]+")
_TOKEN = re.compile(r"[a-z0-9]+")
MAX_PARAMS = 64
MAX_DEPTH = 3

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "please",
        "that",
        "the",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "will",
        "with",
        "you",
        "your",
    ]
)


def split_name(name: str) -> str:
    """``get_weatherForecast.v2`` -> ``get weather Forecast v2``."""
    return " ".join(_CAMEL.sub(" ", part) for part in _SEPARATORS.split(name) if part)


def _schema_lines(schema: Any, depth: int = 0) -> Iterable[str]:
    if not isinstance(schema, Mapping) or depth > MAX_DEPTH:
        return
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        for count, (key, sub) in enumerate(properties.items()):
            if count >= MAX_PARAMS:
                break
            parts = [split_name(str(key))]
            if isinstance(sub, Mapping):
                if isinstance(sub.get("description"), str):
                    parts.append(sub["description"])
                enum = sub.get("enum")
                if isinstance(enum, list):
                    parts.append(" ".join(str(v) for v in enum[:20]))
            yield " ".join(parts)
            yield from _schema_lines(sub, depth + 1)
    items = schema.get("items")
    if isinstance(items, Mapping):
        yield from _schema_lines(items, depth + 1)


def document_text(
    name: str, description: str = "", schema: Any = None, tags: Iterable[str] = ()
) -> str:
    """What is indexed for a function: its name (split, and as written), description,
    parameters and tags, one per line."""
    lines = [f"{split_name(name)} ({name})"]
    if description:
        lines.append(description)
    lines.extend(_schema_lines(schema))
    tag_text = " ".join(tags)
    if tag_text:
        lines.append(tag_text)
    return "\n".join(lines)


def tool_text(tool: Tool) -> str:
    return document_text(tool.name, tool.description, tool.input_schema, tool.tags)


_local = threading.local()  # a PyStemmer stemmer is not thread-safe: one per thread
MAX_STEMS = 100_000  # words whose stem each thread remembers


def stem(tokens: list[str]) -> list[str]:
    """English Snowball stems (PyStemmer), remembered: a dict lookup is ten times cheaper
    than PyStemmer's call, and most words come again."""
    state = _local.__dict__
    stems: dict[str, str] | None = state.get("stems")
    if stems is None:
        import Stemmer

        state["stemmer"] = Stemmer.Stemmer("english")
        stems = state["stems"] = {}
    unique = set(tokens)
    missing = [w for w in unique if w not in stems]
    if missing:
        if len(stems) + len(missing) > MAX_STEMS:
            stems.clear()
            missing = list(unique)
        stems.update(zip(missing, state["stemmer"].stemWords(missing), strict=True))
    return [stems[t] for t in tokens]


def words(text: str) -> list[str]:
    """Lowercase alphanumeric runs (camelCase split first), minus a few stopwords."""
    return [t for t in _TOKEN.findall(_CAMEL.sub(" ", text).lower()) if t not in STOPWORDS]


def tokenize(text: str) -> list[str]:
    """BM25's tokens: :func:`words` as written, then the stem of each one the stemmer changes
    (``forecasts`` gives ``forecasts`` and ``forecast``): a word matches its other forms, and
    matches itself better."""
    written = words(text)
    return written + [s for w, s in zip(written, stem(written), strict=True) if s != w]
