"""Schema-guided argument extraction: fill a tool's arguments from a prompt without an LLM.

:func:`extract_arguments` is pure and deterministic (``now`` anchors relative dates). It finds
typed mentions in the prompt (:mod:`.mentions`: quoted strings, emails, URLs, dates and times,
numbers with units, formulas, lists, names) and gives each to the parameter whose name,
description and role fit it best (:mod:`.filling`, :mod:`.numbers`, :mod:`.strings`). A
required parameter it cannot fill is listed in ``missing``: it never guesses. The result is
checked against the schema (:func:`toolrun.registry.schema.argument_errors`); a value that fails
is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from toolrun.nl.extract.filling import Filler
from toolrun.nl.extract.result import Extraction
from toolrun.nl.extract.text import STOPWORDS, _stem, words

__all__ = ["STOPWORDS", "Extraction", "_stem", "extract_arguments", "words"]


def extract_arguments(
    prompt: str, schema: Mapping[str, Any], *, now: datetime | None = None
) -> Extraction:
    """Fill the arguments of ``schema`` (a tool's ``input_schema``) from ``prompt``; see the
    module docstring. ``now`` anchors "tomorrow", "next Monday" (default: the current time)."""
    return Filler(prompt, schema, now or datetime.now(UTC)).run()
