"""Typed values in a prompt: quoted strings, URLs, emails, dates and times, paths, formulas,
bracketed lists, numbers (with units, in words, in scientific notation), codes and names."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from toolrun.nl.extract.dates import find_moments
from toolrun.nl.extract.text import (
    MONTHS,
    STOPWORDS,
    _stem,
    neighbours,
    wordlist,
    words,
    wordset,
)
from toolrun.nl.extract.values import SCALES

CURRENCY = {"$": "usd", "€": "eur", "£": "gbp"}
CURRENCY_SCALES = {
    "k": "thousand",
    "m": "million",
    "mm": "million",
    "b": "billion",
    "bn": "billion",
}
NUMBER_WORDS = {
    w: n
    for n, w in enumerate(
        wordlist(
            """zero one two three four five six seven eight nine ten eleven twelve thirteen
            fourteen fifteen sixteen seventeen eighteen nineteen twenty"""
        )
    )
} | {"thirty": 30, "forty": 40, "fifty": 50, "hundred": 100, "thousand": 1000, "dozen": 12}
# Capitalised only because they start a sentence: not names.
STARTERS = wordset(
    """
    what whats who whom whose where when why how which is are was were do does did can could
    would will should shall may might please find get calculate compute show tell give list
    search retrieve fetch book determine generate create provide identify predict convert
    estimate check look let hi hello hey help set make send add update delete remove play
    order run perform plot solve analyze analyse recommend suggest schedule reserve buy sell
    mix change draw i im id ive ill if in on at for from to by with the a an my our this
    that these those there here it its and or but so also then now yes no ok okay sure
    thanks thank assuming given using imagine suppose consider locate display count measure
    record track transfer translate write read open close start stop turn switch cancel go
    new
    """
)
NAME_JOINERS = frozenset({"of", "de", "da", "del", "la", "le", "van", "von", "der", "du", "&"})
ABBREVIATIONS = re.compile(r"^(?:[A-Z]\.)+[A-Z]?\.?$|^(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Inc|Ltd|Co)\.$")

_QUOTED = re.compile(
    r'"([^"\n]*)"|\u201c([^\u201d\n]*)\u201d|\u2018([^\u2019\n]*)\u2019|(?<!\w)\'((?:[^\'\n]|\'(?=\w))*)\'(?!\w)'
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"\bhttps?://[^\s\"'<>]+", re.I)
_PATH = re.compile(
    r"\b[A-Za-z]:[\\/][\w./\\-]*|(?<![\w/])(?:~|\.{1,2})?/[\w./-]*"
    r"|\b[\w-]*[A-Za-z][\w-]*\.[a-z0-9]{2,4}\b"
)
_NUMBER = re.compile(
    r"(?<![\w.])([$€£])?\s?(-?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?)"
    r"(?:\s?(%|[^\W\d_]+(?:[-/][^\W\d_]+)*(?:\^\d+)?))?(?![\w-])"
)
_NUMBER_WORD = re.compile(r"\b(" + "|".join(NUMBER_WORDS) + r")\b(?!\s*(?:of|-))", re.I)
_BRACKETS = re.compile(
    r"\[\s*(?:\[[^\[\]\n]*\]\s*,?\s*)+\]|\[[^\[\]\n]*\]|\((?:\s*-?\d[\d.]*\s*,)+\s*-?\d[\d.]*\s*\)"
)
_VAR = r"(?:\d+(?:\.\d+)?(?:\s*\*\s*)?)?[a-z](?![A-Za-z])|\d+(?:\.\d+)?"
_POW = r"(?:\s*(?:\^|\*\*)\s*\d+(?:\.\d+)?)?"
_TERM = r"(?:(?:sin|cos|tan|log|ln|exp|sqrt)\s*\([^()\n]{1,40}\)|\([^()\n]{1,40}\)|" + _VAR + ")"
_FORMULA = re.compile(
    r"(?<![\w.])-?\s*(?:" + _TERM + ")" + _POW + r"(?:\s*[-+*/]\s*(?:" + _TERM + ")" + _POW + ")*"
)
# Identifiers: letters with digits (``CA123456``), snake_case, number ranges (``2022-2023``).
_CODE = re.compile(
    r"(?<![\w-])(?:(?=[\w-]*[A-Za-z])(?=[\w-]*\d)[A-Za-z0-9][\w-]*[A-Za-z0-9]"
    r"|[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+|\d+(?:[-/]\d+)+)(?![\w-])"
)
_RANGE = re.compile(r"(?<![\w.-])\d+(?:[-/]\d+)+(?![\w-])")
_TOKEN = re.compile(r"[^\W\d_][\w'\u2019&.#-]*|&")
_SENTENCE_END = re.compile(r"(?:^|[.!?:;\n\"\u201c(]\s*|\s-\s)$")


@dataclass(frozen=True)
class Mention:
    """A typed value found in the prompt at ``[start, end)``."""

    kind: str
    value: Any
    start: int
    end: int
    text: str
    units: frozenset[str] = frozenset()  # words the value carries ("kg", "usd", "percent")
    before: tuple[str, ...] = ()  # the words before it, nearest first
    after: tuple[str, ...] = ()

    @property
    def context(self) -> frozenset[str]:
        """Its units and neighbouring words, with their stems."""
        found = set(self.before) | set(self.after) | set(self.units)
        return frozenset(found | {_stem(w) for w in found})


def _overlaps(start: int, end: int, taken: list[tuple[int, int]]) -> bool:
    return any(start < b and a < end for a, b in taken)


class _Finder:
    def __init__(self, prompt: str) -> None:
        self.prompt = prompt
        self.found: list[Mention] = []
        self.taken: list[tuple[int, int]] = []

    def add(
        self, kind: str, value: Any, start: int, end: int, extra: frozenset[str] = frozenset()
    ) -> None:
        if start >= end or _overlaps(start, end, self.taken):
            return
        self.taken.append((start, end))
        self.found.append(Mention(kind, value, start, end, self.prompt[start:end], extra))

    def finish(self) -> list[Mention]:
        """The mentions in order, each with the words around it up to its neighbours."""
        ordered = sorted(self.found, key=lambda m: m.start)
        hard = [m for m in ordered if m.kind != "name"]  # names do not end a neighbourhood
        out = []
        for m in ordered:
            left = max((h.end for h in hard if h.end <= m.start), default=0)
            right = min((h.start for h in hard if h.start >= m.end), default=len(self.prompt))
            before, after = neighbours(self.prompt, m.start, m.end, left, right)
            out.append(replace(m, before=before, after=after))
        return out


def find_mentions(prompt: str, now: datetime) -> list[Mention]:
    """Every typed value in ``prompt``, in order; earlier kinds win overlapping spans."""
    f = _Finder(prompt)
    for m in _BRACKETS.finditer(prompt):
        items = _bracket_items(m.group(0))
        if items is not None:
            f.add("list", items, m.start(), m.end())
    for m in _QUOTED.finditer(prompt):
        text = next(g for g in m.groups() if g is not None)
        f.add("quoted", text, m.start(), m.end())
    for m in _URL.finditer(prompt):
        url = m.group(0).rstrip(".,;)?!'\"")
        f.add("url", url, m.start(), m.start() + len(url))
    for m in _EMAIL.finditer(prompt):
        f.add("email", m.group(0).rstrip("."), m.start(), m.start() + len(m.group(0).rstrip(".")))
    for kind, value, start, end in find_moments(prompt, now):
        f.add(kind, value, start, end)
    for m in _PATH.finditer(prompt):
        if len(m.group(0)) > 1 and ("/" in m.group(0) or not m.group(0)[0].isupper()):
            f.add("path", m.group(0), m.start(), m.end())
    for m in _FORMULA.finditer(prompt):
        text = m.group(0).strip()
        if _is_formula(text):
            start = m.start() + m.group(0).index(text[0])
            f.add("formula", text, start, start + len(text))
    for m in _RANGE.finditer(prompt):
        f.add("code", m.group(0), m.start(), m.end())
    _numbers(f)
    for m in _CODE.finditer(prompt):
        f.add("code", m.group(0), m.start(), m.end())
    _names(f)
    return f.finish()


def _bracket_items(text: str) -> list[Any] | None:
    inner = text[1:-1].strip()
    if not inner:
        return None
    try:
        value = json.loads("[" + inner + "]")
    except ValueError:
        parts = [p.strip().strip("'\"") for p in inner.split(",")]
        value = [_parse_number(p) if _parse_number(p) is not None else p for p in parts if p]
    return value if isinstance(value, list) and value else None


def _is_formula(text: str) -> bool:
    if re.fullmatch(r"-?\d+(?:\.\d+)?[eE][-+]?\d+", text):
        return False
    letters = re.findall(r"(?<![A-Za-z])[a-z](?![A-Za-z])", text)
    if not letters:
        return False
    bare = re.sub(r"(?:\^|\*\*)\s*\d+(?:\.\d+)?", "", text)
    has_power = bare != text
    has_sign = bool(re.search(r"[-+]", text.lstrip("-")))
    has_digit = bool(re.search(r"\d", bare))
    return (has_power or has_sign or "*" in text or "/" in text) and (has_digit or has_sign)


def _numbers(f: _Finder) -> None:
    for m in _NUMBER.finditer(f.prompt):
        number = _parse_number(m.group(2))
        if number is None:
            continue
        unit = m.group(3) or ""
        currency = CURRENCY.get(m.group(1) or "")
        if unit.lower() in STOPWORDS or unit.lower() in MONTHS:
            unit = ""
        if currency and unit.lower() in CURRENCY_SCALES:  # "$1.2M"
            unit = CURRENCY_SCALES[unit.lower()]
        elif currency and unit.lower() not in SCALES:  # "$5000 investment": a noun, no unit
            unit = ""
        end = m.end() if unit else m.end(2)
        start = m.start(1) if m.group(1) else m.start(2)
        extra = {currency, "price", "cost", "amount", "money"} if currency else {unit.lower()}
        extra |= set(words(unit)) if "-" in unit else set()
        extra |= {"percent", "percentage", "rate"} if unit == "%" else set()
        if unit.lower() in SCALES:  # "50 million USD": the word after the scale is the unit
            after = re.match(r"\s+([^\W\d_]+)", f.prompt[end:])
            extra |= {after.group(1).lower()} if after else set()
        kept = unit if unit.lower() in SCALES else currency or unit
        f.add("number", (number, kept), start, end, frozenset(w for w in extra if w))
    for m in _NUMBER_WORD.finditer(f.prompt):
        word = m.group(1).lower()
        after = re.match(r"\s+([^\W\d_]+)", f.prompt[m.end() :])
        if word in ("one", "zero") and (after is None or after.group(1).lower() in STOPWORDS):
            continue
        if word in ("hundred", "thousand", "dozen") and not re.search(
            r"\b(?:a|one)\s+$", f.prompt[: m.start()], re.I
        ):
            continue
        unit = after.group(1).lower() if after and after.group(1).lower() not in STOPWORDS else ""
        counted = re.match(r"(?:\s+[^\W\d_]+){1,3}", f.prompt[m.end() :])  # "ten major events"
        nouns = {w.lower() for w in (counted.group(0).split() if counted else [])} - STOPWORDS
        f.add("number", (NUMBER_WORDS[word], unit), m.start(), m.end(), frozenset(nouns))


def _parse_number(text: str) -> int | float | None:
    cleaned = text.replace(",", "") if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", text) else text
    cleaned = cleaned.replace(",", ".") if cleaned.count(",") == 1 else cleaned
    try:
        return int(cleaned)
    except ValueError:
        try:
            return float(cleaned)
        except ValueError:
            return None


def _names(f: _Finder) -> None:
    """Runs of capitalised words (``Leonardo DiCaprio``, ``Museum of Modern Art``, ``NBA``):
    the first word of a sentence counts only when it cannot be an ordinary one."""
    prompt = f.prompt
    tokens = [(m.start(), m.end()) for m in _TOKEN.finditer(prompt)]
    run: list[tuple[int, int]] = []

    def close() -> None:
        while run and prompt[run[-1][0] : run[-1][1]].rstrip(".").lower() in NAME_JOINERS:
            run.pop()
        if len(run) == 1 and _sentence_initial(prompt, run[0][0]):
            word = prompt[run[0][0] : run[0][1]]
            if word[1:].islower() or len(word) == 1:  # "Train a model": a verb, not a name
                run.clear()
        if run:
            start, end = run[0][0], run[-1][1]
            text = re.sub(r"['\u2019]s$", "", prompt[start:end].rstrip(".'\u2019-"))
            f.add("name", text, start, start + len(text))
        run.clear()

    for start, end in tokens:
        word = prompt[start:end]
        bare = word.rstrip(".")
        capital = bare[:1].isupper() and bare.lower() != "i" and not bare.lower().startswith("i'")
        joiner = bool(run) and word.lower() in NAME_JOINERS
        gap = prompt[run[-1][1] : start] if run else ""
        if run and (gap.strip() not in ("",) or "\n" in gap):
            close()
        if (
            run
            and prompt[run[-1][0] : run[-1][1]].endswith(".")
            and not ABBREVIATIONS.match(prompt[run[-1][0] : run[-1][1]])
        ):
            close()
        if capital and _sentence_initial(prompt, start) and not run:
            lowered = re.sub(r"['\u2019]", "", bare.lower())
            if lowered in STARTERS or lowered in STOPWORDS:
                continue
        if capital or joiner:
            run.append((start, end))
        else:
            close()
    close()


def _sentence_initial(prompt: str, start: int) -> bool:
    return bool(_SENTENCE_END.search(prompt[:start]))
