"""Free text for string parameters: formulas, quoted text, paths, names and codes.

The passes here (the filler runs them in order, :mod:`.phrases` in between): a formula for a
``function``/``equation`` parameter; quoted text whose neighbours name the parameter; a path;
the value right after the words naming the parameter (``the company Amazon``, ``title 'David'``,
``patient id 546382``) or right before them (``David Leitch as the director``); a name holding
such a word (``Louvre Museum`` for ``museum_name``); names whose surroundings point at a
parameter; and last, a lone required parameter with a lone value.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from toolrun.nl.extract.mentions import Mention
from toolrun.nl.extract.params import is_formula, is_path, is_person
from toolrun.nl.extract.text import (
    GENERIC,
    LOCATION_WORDS,
    STOPWORDS,
    _stem,
    description_words,
    name_tokens,
    words,
)

if TYPE_CHECKING:
    from toolrun.nl.extract.filling import Filler

VALUE_KINDS = ("quoted", "name", "code")
Value = tuple[str, int, int]  # text, start, end

_LINK = r"\s*(?:is|are|=|:|called|named|titled|of|as|-|to)?\s*(?:the\s+)?"
PHRASE_STOP = frozenset(
    STOPWORDS
    | {"from", "between", "during", "within", "per", "since", "who", "that", "which"}
    | {"related", "regarding", "concerning", "including", "where", "when", "while"}
)


def text_params(f: Filler) -> list[str]:
    return [n for n in f.open_params("string") if not f.props[n].get("enum")]


def free_values(f: Filler) -> list[Mention]:
    """Free values a string may be: quoted text, names and codes, but not a quote holding
    the whole prompt."""
    return [
        m
        for m in f.free(VALUE_KINDS)
        if not (m.kind == "quoted" and len(m.text) >= 0.8 * len(f.prompt.strip()))
    ]


def cue_words(name: str) -> set[str]:
    return {w for w in name_tokens(name) if w not in GENERIC and len(w) > 1}


def formulas(f: Filler) -> None:
    for name in text_params(f):
        if is_formula(name, f.props[name]):
            found = f.free("formula")
            if found:
                m = found[0]
                f.take(name, m.value, m.start, m.end, 0.8, "formula")


def quoted_by_cue(f: Filler) -> None:
    """Quoted text to the parameter its neighbours name best (``title 'David'``)."""
    claims = [
        (f.affinity(name, m), name, m)
        for name in text_params(f)
        for m in f.free("quoted")
        if m in free_values(f)
    ]
    for score, name, m in sorted(claims, key=lambda c: (-c[0], c[2].start)):
        if score > 0 and name not in f.result.arguments and f.is_free(m.start, m.end):
            f.take(name, m.value, m.start, m.end, 0.9, "quoted")


def paths(f: Filler) -> None:
    for name in text_params(f):
        spec = f.props[name]
        if is_path(name, spec) or {"path", "directory", "file"} & set(description_words(spec)[:3]):
            paths = f.free("path")
            named = [m for m in paths if f.affinity(name, m) > 0]
            pick = (named or paths)[:1]
            if pick:
                m = pick[0]
                f.take(name, m.value, m.start, m.end, 0.8 if named else 0.6, "path")


# -- a value named by the words around it ----------------------------------------------------------


def after_cue(f: Filler) -> None:
    """``the company Amazon``, ``player 'LeBron James'``, ``docket number 123456``, ``title
    is Dune``, ``medium to oil``: the value right after the words naming the parameter."""
    for name in text_params(f):
        name_words = words(name)
        strong = cue_words(name) | {" ".join(name_words)}
        weak = set(name_words) - strong  # "id" in patient_id: only before a code or number
        for cues, plain in ((strong, True), (weak, False)):
            found = _after(f, name, sorted((c for c in cues if c), key=len, reverse=True), plain)
            if found is not None:
                f.take(name, *found, 0.85 if plain else 0.75, "named")
                break


def _after(f: Filler, name: str, cues: list[str], plain: bool) -> Value | None:
    if not cues:
        return None
    alternatives = "|".join(re.escape(c).replace(r"\ ", r"[\s_-]+") for c in cues)
    pattern = re.compile(r"\b(?:" + alternatives + r")(?:e?s)?\b" + _LINK, re.I)
    for cue in pattern.finditer(f.prompt):
        found = _value_at(f, cue.end(), linked=plain)
        if found is None or _is_cue_itself(found[0], name):
            continue
        kind = next((m.kind for m in f.mentions if m.start == found[1]), "word")
        if plain or kind in ("code", "number", "quoted"):
            return found
    return None


def before_role(f: Filler) -> None:
    """``David Leitch as the director``, ``Alex King in the cast``: a value, then the word
    naming its parameter."""
    for name in text_params(f):
        cues = sorted(cue_words(name), key=len, reverse=True)
        if not cues:
            continue
        pattern = re.compile(
            r"\s+(?:as|in)\s+(?:the\s+|a\s+|an\s+|my\s+)?(?:"
            + "|".join(map(re.escape, cues))
            + r")(?:e?s)?\b",
            re.I,
        )
        for m in free_values(f):
            if m.kind != "quoted" and pattern.match(f.prompt, m.end):
                f.take(name, m.value, m.start, m.end, 0.8, "named")
                break


def _value_at(f: Filler, at: int, *, linked: bool) -> Value | None:
    """The value starting at ``at``: a quoted text, name, code or number; a plain word only
    after an explicit link (``is``, ``:``, ``called``)."""
    for m in f.free((*VALUE_KINDS, "number")):
        if m.start == at and m in free_values(f) + f.free("number"):
            return (m.text if m.kind == "number" else str(m.value)), m.start, m.end
    link = re.search(r"(?:\bis|=|:|\bcalled|\bnamed|\btitled)\s*$", f.prompt[:at], re.I)
    token = re.match(r"[^\s,;.!?]+", f.prompt[at:])
    if linked and link and token and token.group(0).lower() not in PHRASE_STOP:
        end = at + len(token.group(0))
        if f.is_free(at, end):
            return token.group(0), at, end
    return None


def _is_cue_itself(text: str, name: str) -> bool:
    """``SNP`` for ``snp_id``: the prompt naming the parameter, not its value."""
    found = {_stem(w) for w in words(text)}
    return bool(found) and found <= name_tokens(name)


def names_holding_a_cue(f: Filler) -> None:
    """``Louvre Museum`` for ``museum_name``, ``Hotel Paradise`` for ``hotel_name``."""
    for name in text_params(f):
        cues = cue_words(name) - LOCATION_WORDS
        for m in f.free("name"):
            held = {_stem(w) for w in words(str(m.value))}
            if cues & held and not _is_cue_itself(str(m.value), name):
                f.take(name, m.value, m.start, m.end, 0.8, "name")
                break


# -- names by their surroundings, and the last one -------------------------------------------------


def names_by_affinity(f: Filler) -> None:
    claims: list[tuple[float, str, Mention]] = []
    for name in text_params(f):
        spec = f.props[name]
        person = is_person(name, spec)
        for m in f.free(("name", "code", "number")):
            if _is_cue_itself(str(m.value), name) or (m.kind == "number" and m.text[:1].isalpha()):
                continue
            score = f.affinity(name, m) - (1 if m.kind == "number" else 0)
            if person and m.kind == "name" and _looks_like_person(str(m.value)):
                score += 1.5
            before = f.prompt[: m.start].rstrip().lower().split()
            if person and before and before[-1] == "by":
                score += 1
            if score >= (1.5 if f.is_required(name) else 2.5):
                claims.append((score, name, m))
    claims.sort(key=lambda c: (-c[0], c[2].start))
    for _, name, m in claims:
        if name in f.result.arguments or not f.is_free(m.start, m.end):
            continue
        f.take(name, m.text if m.kind == "number" else m.value, m.start, m.end, 0.7, "name")


def _looks_like_person(text: str) -> bool:
    parts = text.split()
    return 2 <= len(parts) <= 3 and all(p[:1].isupper() and p.isalpha() for p in parts)


def leftovers(f: Filler) -> None:
    """One required text parameter left and one unplaced value: it is that one."""
    needed = [n for n in text_params(f) if f.is_required(n)]
    values = (
        [m for m in free_values(f) if not _is_cue_itself(str(m.value), needed[0])] if needed else []
    )
    if len(needed) == 1 and len(values) == 1:
        m = values[0]
        f.take(needed[0], m.value, m.start, m.end, 0.55, "only")
