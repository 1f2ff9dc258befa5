"""A prompt's text as a value of a parameter's schema type, and the words naming a value."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from toolrun.nl.extract.params import type_of
from toolrun.nl.extract.text import STOPWORDS, words

_OPTION = re.compile(r"['\"`]([^'\"`\n]{1,30})['\"`]")
_FRACTION_WORDS = re.compile(r"\b(?:decimal|fraction|between 0 and 1|0 to 1|0-1)\b", re.I)
_PERCENT_WORDS = re.compile(r"\bpercent(?:age)?s?\b|%", re.I)
RATE_WORDS = frozenset({"rate", "yield", "return", "interest", "ratio", "fraction"})
SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
SI_PREFIXES = {"k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3, "u": 1e-6, "\u00b5": 1e-6, "n": 1e-9}


def explicit_value(raw: str, spec: Mapping[str, Any]) -> Any:
    """``raw`` (a word, number or quoted text the prompt assigned to a parameter) as a value of
    the parameter's type, or None when it is not one."""
    kind = type_of(spec)
    text = raw[1:-1] if raw[:1] in "\"'" and raw[-1:] == raw[:1] and len(raw) >= 2 else raw
    if kind == "integer":
        return int(text) if re.fullmatch(r"-?\d+", text) else None
    if kind == "number":
        return float(text) if re.fullmatch(r"-?\d+(?:\.\d+)?", text) else None
    if kind == "boolean":
        return {"true": True, "yes": True, "false": False, "no": False}.get(text.lower())
    if kind == "string":
        options = spec.get("enum")
        if options:
            return next((o for o in options if str(o).lower() == text.lower()), None)
        return text
    return None


def fits_number(spec: Mapping[str, Any], number: float) -> bool:
    kind = type_of(spec)
    return kind == "number" or (kind == "integer" and float(number).is_integer())


def as_number(
    spec: Mapping[str, Any], number: float, unit: str = "", name: str = ""
) -> int | float:
    """``number`` for a numeric parameter: scaled by a word (``50 million``) or by an SI prefix
    the description's unit lacks (``50mH`` for henries), a percentage as a fraction for a rate
    not described in percent, an integer for an integer parameter."""
    description = str(spec.get("description") or "")
    if unit.lower() in SCALES:
        number = number * SCALES[unit.lower()]
    elif unit == "%":
        rate = type_of(spec) == "number" and bool(set(words(name)) & RATE_WORDS)
        if _FRACTION_WORDS.search(description) or (rate and not _PERCENT_WORDS.search(description)):
            number = number / 100
    elif len(unit) >= 2 and unit[0] in SI_PREFIXES and _has_unit(description, unit[1:]):
        number = number * SI_PREFIXES[unit[0]]
    number = float(f"{number:.12g}") if isinstance(number, float) else number
    if type_of(spec) == "integer" and float(number).is_integer():
        return int(number)
    return number


def _has_unit(description: str, symbol: str) -> bool:
    """Whether a description gives its unit as ``symbol`` (``in henries (H)``, ``Hz``)."""
    return bool(re.search(r"[(\s]" + re.escape(symbol) + r"[)\s.,]", f" {description} "))


def enum_phrases(option: Any, spec: Mapping[str, Any]) -> list[tuple[str, float]]:
    """Phrases naming an enum value: the value, its words, and names the description gives
    it (``"F" for Fahrenheit``, ``F (Fahrenheit)``)."""
    text = str(option)
    phrases = [(text.lower(), 0.95)]
    spaced = " ".join(words(text))
    if spaced and spaced != text.lower():
        phrases.append((spaced, 0.9))
    description = str(spec.get("description") or "")
    escaped = re.escape(text)
    for pattern in (
        r"[\"'`]?" + escaped + r"[\"'`]?\s+(?:for|means|is|=)\s+([A-Za-z][\w-]*)",
        r"[\"'`]?" + escaped + r"[\"'`]?\s*\(([A-Za-z][\w\s-]*)\)",
    ):
        for m in re.finditer(pattern, description):
            phrases.append((m.group(1).strip().lower(), 0.9))
    return phrases


def enum_words(props: Mapping[str, Mapping[str, Any]]) -> set[str]:
    found: set[str] = set()
    for spec in props.values():
        for option in spec.get("enum") or ():
            found |= {p for p, _ in enum_phrases(option, spec)}
    return found


def described_options(spec: Mapping[str, Any]) -> list[str]:
    """Values a description quotes as examples or choices (``'Darwin'``, ``'gas'``): not a
    closed list, but a prompt using one of them as a word means it."""
    if spec.get("enum"):
        return []
    found = []
    for m in _OPTION.finditer(str(spec.get("description") or "")):
        option = m.group(1).strip()
        if option and option.lower() not in STOPWORDS and not option.isdigit():
            found.append(option)
    return found
