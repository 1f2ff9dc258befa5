"""Lists for array parameters: bracketed lists, runs of numbers, quoted texts or names joined by
commas and ``and``, and words listed after the word naming the parameter.

One array parameter takes the list its surrounding words name best (or the only one); several
take the lists their words name, or, when there are as many lists as parameters, the lists in
order (``array_1``/``array_2``).
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from toolrun.nl.extract.mentions import Mention
from toolrun.nl.extract.numbers import digits
from toolrun.nl.extract.params import item_spec, type_of
from toolrun.nl.extract.strings import PHRASE_STOP
from toolrun.nl.extract.text import GENERIC, _stem, description_words, name_tokens
from toolrun.nl.extract.values import as_number, fits_number

if TYPE_CHECKING:
    from toolrun.nl.extract.filling import Filler

Candidate = tuple[list[Any], int, int]  # items, start, end
_JOIN = re.compile(r"^\s*(?:,|and|&|or)?\s*(?:,|and|&|or)?\s*$")
_ITEM = r"[\w'-]+(?:\s+(?!(?:and|or)\b)[\w'-]+)?"
_LIST = re.compile(
    r"\s*(?::|=|are|is|of|like|as|with|including)?\s*("
    + _ITEM
    + r"(?:\s*,\s*"
    + _ITEM
    + r")*\s*,?\s*(?:and|or|&)\s+"
    r"[\w'-]+(?:\s+(?!(?:and|or|with|in|for|at|to)\b)[\w'-]+)?)"
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


def fill_number_lists(f: Filler) -> None:
    """``[10, 15, 12]``, ``(40.7, -74.0)`` or ``1, 2 and 3`` for array parameters of numbers."""
    params = [
        n
        for n in f.open_params("array")
        if type_of(item_spec(f.props[n])) in ("integer", "number") or _numeric_tuple(f, n)
    ]
    candidates = _number_lists(f) if params else []
    for name, (values, start, end) in _assign(f, params, candidates):
        spec = item_spec(f.props[name])
        if spec and not all(fits_number(spec, v) for v in values):
            continue
        f.take(name, [as_number(spec, v) if spec else v for v in values], start, end, 0.75, "list")


def fill_text_lists(f: Filler) -> None:
    """Lists of strings: bracketed, quoted (``'Age', 'Income' and 'Education'``), names
    (``John and Alice``), or words after the parameter's own word."""
    params = [
        n
        for n in f.open_params("array")
        if type_of(item_spec(f.props[n])) == "string" or not item_spec(f.props[n])
    ]
    for name in params:
        if name in f.result.arguments:
            continue
        options = item_spec(f.props[name]).get("enum")
        candidates = [
            (list(m.value), m.start, m.end)
            for m in f.free("list")
            if all(isinstance(v, str) for v in m.value)
        ]
        candidates += [c for c in (_run(f, "quoted"), _run(f, "name")) if c is not None]
        if options:
            candidates = [c for c in candidates if all(v in options for v in c[0])]
        if candidates:
            values, start, end = _best(f, name, sorted(candidates, key=lambda c: c[1]))
            f.take(name, values, start, end, 0.8, "list")
            continue
        found = _word_list(f, name, options)
        if found is not None:
            f.take(name, *found, 0.75, "list")


def _assign(
    f: Filler, params: list[str], candidates: list[Candidate]
) -> list[tuple[str, Candidate]]:
    if not params or not candidates:
        return []
    if len(params) == len(candidates):
        return list(zip(params, candidates, strict=True))
    if len(params) == 1:
        return [(params[0], _best(f, params[0], candidates))]
    claimed: list[tuple[str, Candidate]] = []
    for name in params:
        score, best = max(((_affinity(f, name, c), c) for c in candidates), key=lambda s: s[0])
        if score > 0 and all(best[1] != c[1] for _, c in claimed):
            claimed.append((name, best))
    return claimed


def _numeric_tuple(f: Filler, name: str) -> bool:
    spec = f.props[name]
    return not item_spec(spec) and "coordinate" in str(spec.get("description") or "").lower()


def _number_lists(f: Filler) -> list[Candidate]:
    found: list[Candidate] = []
    for m in f.free("list"):
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in m.value):
            found.append((list(m.value), m.start, m.end))
    runs: list[list[Mention]] = []
    for m in digits(f):
        if runs and _JOIN.match(f.prompt[runs[-1][-1].end : m.start]):
            runs[-1].append(m)
        else:
            runs.append([m])
    for run in runs:
        if len(run) >= 2:
            found.append(([n.value[0] for n in run], run[0].start, run[-1].end))
    return sorted(found, key=lambda c: c[1])


def _run(f: Filler, kind: str) -> Candidate | None:
    """The longest run of two or more free mentions of ``kind`` joined by commas or ``and``."""
    best: list[Mention] = []
    run: list[Mention] = []
    for m in f.free(kind):
        run = [*run, m] if run and _JOIN.match(f.prompt[run[-1].end : m.start]) else [m]
        if len(run) > len(best):
            best = list(run)
    if len(best) >= 2 and all(a.end <= b.start for a, b in pairwise(best)):
        return [str(m.value) for m in best], best[0].start, best[-1].end
    return None


def _affinity(f: Filler, name: str, candidate: Candidate) -> float:
    inside = [m for m in f.mentions if candidate[1] <= m.start < candidate[2]]
    return max((f.affinity(name, m) for m in inside), default=0.0)


def _best(f: Filler, name: str, candidates: list[Candidate]) -> Candidate:
    return max(candidates, key=lambda c: (_affinity(f, name, c), len(c[0]), -c[1]))


def _word_list(f: Filler, name: str, options: object) -> tuple[list[str], int, int] | None:
    """``a, b and c`` right after a word naming the parameter (anywhere for a required
    one); items lose leading function words (``am efficient`` -> ``efficient``)."""
    tokens = name_tokens(name) | {w for w in description_words(f.props[name]) if w not in GENERIC}
    cues = [
        m.end()
        for m in _WORD.finditer(f.prompt)
        if m.group(0).lower() in tokens or _stem(m.group(0).lower()) in tokens
    ]
    anywhere = [m.start() for m in _WORD.finditer(f.prompt)] if f.is_required(name) else []
    for position in cues + anywhere:
        m = _LIST.match(f.prompt, position)
        if m is None or not f.is_free(m.start(1), m.end(1)):
            continue
        parts = [_trim(p) for p in re.split(r"\s*,\s*|\s+(?:and|or|&)\s+", m.group(1)) if p]
        parts = [p for p in parts if p]
        if len(parts) < 2:
            continue
        if isinstance(options, list) and options:
            lowered = {str(o).lower(): o for o in options}
            if not all(p.lower() in lowered for p in parts):
                continue
            return [lowered[p.lower()] for p in parts], m.start(1), m.end(1)
        return parts, m.start(1), m.end(1)
    return None


def _trim(item: str) -> str:
    kept = item.split()
    while kept and (kept[0].lower() in PHRASE_STOP or kept[0].lower() in {"am", "being"}):
        kept = kept[1:]
    return " ".join(kept)
