"""Values a prompt gives as phrases around them: pairs in order (``from London to Paris``,
``between Aries and Gemini``, ``yellow and blue colors``), places after ``in``/``at``/``from``
(with their region when the parameter asks for one), the word before what a ``*_type``
parameter classifies (``a single room``) and what a topic is ``about``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from toolrun.nl.extract.mentions import STARTERS, Mention
from toolrun.nl.extract.params import is_moment, is_place
from toolrun.nl.extract.strings import (
    PHRASE_STOP,
    Value,
    cue_words,
    free_values,
    text_params,
)
from toolrun.nl.extract.text import GENERIC, MONTHS, STOPWORDS, WEEKDAYS, description_words, words
from toolrun.nl.extract.values import enum_words

if TYPE_CHECKING:
    from toolrun.nl.extract.filling import Filler

TYPE_WORDS = frozenset({"type", "kind", "category", "genre", "style", "mode", "class", "variety"})
TOPIC_WORDS = frozenset({"topic", "subject", "query", "keyword", "keywords", "term", "theme"})
PLACE_PREPOSITIONS = ("in", "at", "near", "around", "from", "to", "of", "for")
CALENDAR_WORDS = frozenset((*MONTHS, *WEEKDAYS))
FROM_WORDS = frozenset({"start", "starting", "origin", "from", "source", "departure", "pickup"})
TO_WORDS = frozenset({"end", "ending", "destination", "to", "target", "arrival", "dropoff"})
_PAIR_GAP = re.compile(
    r"^\s*(?:,\s*)?(?:and|to|with|vs\.?|versus|&|or|,)\s*(?:the\s+|a\s+)?$", re.I
)
_WORD_PAIR = re.compile(
    r"\b(?:between|from)\s+(?:the\s+|a\s+|an\s+)?([A-Za-z][\w-]*)\s+(?:and|to)\s+"
    r"(?:the\s+|a\s+|an\s+)?([A-Za-z][\w-]*)",
    re.I,
)
_TYPE_OF = re.compile(
    r"\b(?:type|kind|category|genre|style)s?\s+of\s+(?:the\s+|a\s+)?(\w+(?:/\w+)*)", re.I
)
_TOPIC = (r"about", r"regarding", r"related\s+to", r"concerning", r"on")
_LOWER_PLACE = re.compile(
    r"\b(?:in|at|near)\s+([a-z][\w'\u2019-]+(?:\s+(?!(?:in|at|for|on|with|and|or|to|please|"
    r"now|today|tomorrow)\b)[a-z][\w'\u2019-]+)?)"
)
# A description asking for a place with its region: "city and state", "e.g. Denver, CO".
_REGION = re.compile(r"\b(?:state|country|province|region)\b|\b[A-Z][a-z]+, [A-Z]{2}\b", re.I)
_PARTICIPLE = re.compile(r"-(?:\w+ed|\w+ing)$")


# -- pairs -----------------------------------------------------------------------------------------


def pairs(f: Filler) -> None:
    """An ordered group of string parameters takes values the prompt joins with ``and``,
    ``to``, ``with`` or ``vs`` (``from X to Y``, ``between Boston, MA and Miami``), else
    exactly as many lone values as it has open members, in order."""
    for group in f.groups:
        members = [n for n in group if n in text_params(f)]
        if len(members) < 2 or len(members) != len(group) or any(map(is_moment, members)):
            continue
        places = all(is_place(n, f.props[n]) for n in members)
        values = _merged(f, free_values(f)) if places else _as_values(free_values(f))
        chain = (
            _chain(f, values, len(members))
            or _word_chain(f, group)
            or (values if len(values) == len(members) else None)
        )
        if chain is None:
            continue
        for name, (value, start, end) in zip(members, chain, strict=True):
            f.take(name, value, start, end, 0.7, "pair")


def _as_values(mentions: list[Mention]) -> list[Value]:
    return [(str(m.value), m.start, m.end) for m in mentions]


def _merged(f: Filler, mentions: list[Mention]) -> list[Value]:
    """Names with the region after their comma joined (``Boston, MA``, ``Paris, France``)
    when the region is written in capitals or repeats."""
    out: list[Value] = []
    for m in mentions:
        if out and m.kind == "name" and re.fullmatch(r",\s*", f.prompt[out[-1][2] : m.start]):
            text = str(m.value)
            if text.isupper() or sum(str(o.value) == text for o in mentions) > 1:
                previous = out.pop()
                out.append((f"{previous[0]}, {text}", previous[1], m.end))
                continue
        out.append((str(m.value), m.start, m.end))
    return out


def _chain(f: Filler, values: list[Value], size: int) -> list[Value] | None:
    for i in range(len(values) - size + 1):
        run = values[i : i + size]
        if all(_PAIR_GAP.match(f.prompt[a[2] : b[1]]) for a, b in pairwise(run)):
            return run
    return None


def _word_chain(f: Filler, group: list[str]) -> list[Value] | None:
    """Two lower-case words: ``between X and Y``, ``from X to Y``, or ``X and Y <what the
    group names>`` (``yellow and blue colors`` for ``color1``/``color2``)."""
    if len(group) != 2:
        return None
    shared = set.intersection(*(cue_words(n) for n in group))
    patterns = [_WORD_PAIR]
    if shared:
        cue = "|".join(map(re.escape, sorted(shared)))
        patterns.append(
            re.compile(r"\b([A-Za-z][\w-]*)\s+(?:and|or|&)\s+([A-Za-z][\w-]*)\s+(?:" + cue + r")")
        )
    for pattern in patterns:
        for m in pattern.finditer(f.prompt):
            first, second = m.group(1), m.group(2)
            if first.lower() in PHRASE_STOP or second.lower() in PHRASE_STOP:
                continue
            if f.is_free(m.start(1), m.end(1)) and f.is_free(m.start(2), m.end(2)):
                return [(first, m.start(1), m.end(1)), (second, m.start(2), m.end(2))]
    return None


def places(f: Filler) -> None:
    params = [n for n in text_params(f) if is_place(n, f.props[n])]
    for name in params:
        best: tuple[int, Mention] | None = None
        role = set(words(name)) | set(description_words(f.props[name])[:3])
        wanted = "from" if role & FROM_WORDS else "to" if role & TO_WORDS else None
        for m in f.free(("name", "quoted")):
            if str(m.value).lower() in CALENDAR_WORDS:
                continue
            before = f.prompt[: m.start].rstrip().lower().split()
            preposition = before[-1] if before else ""
            after_place = any(
                f.result.evidence.get(p, {}).get("end") is not None
                and re.fullmatch(r",\s*", f.prompt[f.result.evidence[p]["end"] : m.start])
                for p in params
            )  # "Tokyo, Japan": the country after the city
            if preposition not in PLACE_PREPOSITIONS and not after_place:
                continue
            if preposition == wanted:
                rank = 0  # "from London" for a start, "to Paris" for a destination
            elif preposition in ("in", "at", "near", "around") or after_place:
                rank = 1
            else:
                rank = 2
            if not f.is_required(name) and rank == 2:
                continue  # an optional place only on firm evidence
            if best is None or rank < best[0]:
                best = (rank, m)
        if best is not None:
            others = [p for p in params if p != name and p not in f.result.arguments]
            wants_region = _REGION.search(str(f.props[name].get("description") or ""))
            region = wants_region and not others
            value, start, end = _with_region(f, best[1]) if region else _as_values([best[1]])[0]
            f.take(name, value, start, end, 0.85, "place")
            continue
        if not f.is_required(name):
            continue
        exclude = enum_words(f.props)
        for lower in _LOWER_PLACE.finditer(f.prompt):
            value = lower.group(1)
            if value.lower() in STOPWORDS or value.lower() in exclude:
                continue
            if f.is_free(lower.start(1), lower.end(1)):
                f.take(name, value, lower.start(1), lower.end(1), 0.55, "place")
                break


def _with_region(f: Filler, m: Mention) -> Value:
    """``Denver, Colorado``, ``London, UK``: a place with the region after its comma."""
    end = m.end
    value = str(m.value)
    for other in free_values(f):
        if other.start <= end or other.kind != "name":
            continue
        if re.fullmatch(r",\s*", f.prompt[end : other.start]) and len(value.split(",")) < 3:
            value = f"{value}, {other.value}"
            end = other.end
    return value, m.start, end


def _type_cues(name: str, spec: Mapping[str, Any]) -> list[str]:
    """What a ``*_type`` parameter classifies: its other name words and the noun after
    "type of (the)" in its description; or a multi-word name as a phrase."""
    name_words = words(name)
    if len(name_words) >= 2 and not set(name_words) & TYPE_WORDS:
        return [" ".join(name_words)]
    cues = [w for w in name_words if w not in TYPE_WORDS and w not in GENERIC]
    m = _TYPE_OF.search(str(spec.get("description") or ""))
    if m:  # "Type of the cuisine/restaurant"
        cues += [w.lower() for w in m.group(1).split("/") if w.lower() not in STOPWORDS]
    return cues


def before_cue(f: Filler) -> None:
    """``a single room`` (room_type), ``Italian restaurant`` (type: the type of the
    restaurant), ``red dominant color`` (dominant_color): the word before what the parameter
    classifies."""
    for name in text_params(f):
        spec = f.props[name]
        name_words = words(name)
        typed = bool(set(name_words) & TYPE_WORDS) or re.match(
            r"\s*(?:the\s+)?(?:type|kind)\s+of\b", str(spec.get("description") or ""), re.I
        )
        if not typed and len(name_words) < 2:
            continue
        if not f.is_required(name) and (typed or len(name_words) < 2):
            continue  # an optional parameter: only on its whole name ("red dominant color")
        for cue in _type_cues(name, spec):
            pattern = r"\b([A-Za-z][\w]*(?:-\w+)?)\s+" + re.escape(cue) + r"(?:e?s)?\b"
            found = None
            for m in re.finditer(pattern, f.prompt, re.I):
                word = _PARTICIPLE.sub("", m.group(1))
                if word.lower() in PHRASE_STOP | GENERIC | STARTERS:
                    continue
                if f.is_free(m.start(1), m.end(1)):
                    found = (word, m.start(1), m.start(1) + len(word))
                    break
            if found is not None:
                f.take(name, *found, 0.6, "modifier")
                break


def topics(f: Filler) -> None:
    """``news about Bitcoin``, ``a case about fraud``: what a topic parameter is about."""
    for name in text_params(f):
        if not set(words(name)) & TOPIC_WORDS:
            continue
        for preposition in _TOPIC:
            found = None
            for m in re.finditer(r"\b" + preposition + r"\s+", f.prompt, re.I):
                found = phrase_at(f, m.end())
                if found is not None:
                    break
            if found is not None:
                f.take(name, *found, 0.65, "topic")
                break


def phrase_at(f: Filler, at: int, size: int = 3) -> Value | None:
    """Up to ``size`` words from ``at``, stopping at a function word or punctuation."""
    tokens = list(re.finditer(r"[^\W\d_][\w'-]*", f.prompt[at : at + 60]))
    picked: list[re.Match[str]] = []
    for t in tokens:
        gap = f.prompt[at + (picked[-1].end() if picked else 0) : at + t.start()]
        if picked and gap.strip():
            break
        if not picked and t.start() > 0 and f.prompt[at : at + t.start()].strip():
            break
        if t.group(0).lower() in PHRASE_STOP:
            if picked:
                break
            continue
        picked.append(t)
        if len(picked) == size:
            break
    if not picked:
        return None
    start, end = at + picked[0].start(), at + picked[-1].end()
    return (f.prompt[start:end], start, end) if f.is_free(start, end) else None
