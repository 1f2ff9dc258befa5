"""Numbers for numeric parameters (lists of them are :mod:`.lists`'s).

A number goes to the parameter its surrounding words name (``3 people``, ``base of 10``,
``30 degree Celsius`` for a temperature in Celsius); an optional parameter needs stronger
evidence than a required one. Parameters given in order (``num1``/``num2``) take the numbers
they claim in the order the prompt gives them. Unlabelled numbers are placed only when nothing
else can take them: one number for one parameter, or exactly as many as an ordered group needs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from toolrun.nl.extract.mentions import Mention
from toolrun.nl.extract.params import type_of
from toolrun.nl.extract.text import _stem, name_tokens
from toolrun.nl.extract.values import as_number, fits_number

if TYPE_CHECKING:
    from toolrun.nl.extract.filling import Filler

COUNT_WORDS = frozenset({"count", "num", "quantity", "total", "limit", "top", "results", "size"})
OPTIONAL_EVIDENCE = 2.0  # an optional parameter takes a number only on this much affinity
_NAMED_PAIR = re.compile(
    r"\b([A-Za-z]\w*)\s+and\s+([A-Za-z]\w*)\s+(?:(?:as|are|is|of|being|=|:)\s*)?", re.I
)


def fill_numbers(f: Filler) -> None:
    params = f.open_params("integer", "number")
    if not params:
        return
    _respectively(f, params)
    params = f.open_params("integer", "number")
    slots: dict[str, tuple[str, ...]] = {}
    for name in params:
        group = f.group_of(name)
        members = tuple(n for n in group if n in params) if group else (name,)
        slots[name] = members if name in members else (name,)
    claims: list[tuple[float, str, Mention]] = []
    for name in params:
        spec = f.props[name]
        for m in f.free("number"):
            if not fits_number(spec, m.value[0]):
                continue
            if m.text[:1].isalpha() and not _counts(f, name, m):
                continue
            score = f.affinity(name, m)
            if score <= 0 or (not f.is_required(name) and score < OPTIONAL_EVIDENCE):
                continue
            claims.append((score, name, m))
    claims.sort(key=lambda c: (-c[0], c[2].start))
    won: dict[tuple[str, ...], list[Mention]] = {}
    owned: set[int] = set()
    for _, name, m in claims:
        slot = slots[name]
        taken = won.setdefault(slot, [])
        if m.start in owned or len(taken) >= len(slot):
            continue
        taken.append(m)
        owned.add(m.start)
    for slot, mentions in won.items():
        for name, m in zip(slot, sorted(mentions, key=lambda m: m.start), strict=False):
            score = f.affinity(name, m)
            _take(f, name, m, min(0.95, 0.6 + 0.1 * score), "number")
    _fill_groups_by_unit(f)
    _fill_groups_in_order(f)
    _fill_the_last_one(f)


def _respectively(f: Filler, params: list[str]) -> None:
    """``its base and height as 6cm and 10cm``: two parameters named, then two numbers."""
    numbers = {m.start: m for m in digits(f)}
    for m in _NAMED_PAIR.finditer(f.prompt):
        first, second = numbers.get(m.end()), None
        if first is None:
            continue
        joined = re.match(r"\s*(?:,\s*)?and\s+", f.prompt[first.end :])
        if joined:
            second = numbers.get(first.end + joined.end())
        names = [_param_named(f, params, m.group(i)) for i in (1, 2)]
        if second is None or None in names or names[0] == names[1]:
            continue
        for name, value in zip(names, (first, second), strict=True):
            if name is not None and fits_number(f.props[name], value.value[0]):
                _take(f, name, value, 0.8, "respectively")
        return


def _param_named(f: Filler, params: list[str], word: str) -> str | None:
    found = [p for p in params if _stem(word.lower()) in name_tokens(p)]
    return found[0] if len(found) == 1 else None


def _take(f: Filler, name: str, m: Mention, confidence: float, source: str) -> None:
    number, unit = m.value
    value = as_number(f.props[name], number, unit, name)
    f.take(name, value, m.start, m.end, confidence, source)


def _counts(f: Filler, name: str, m: Mention) -> bool:
    """Whether a number in words (``three traits``) is a value for ``name``: the word after
    it names the parameter, or the parameter counts things; never a member of an ordered
    group (``two charges`` counts charge1 and charge2)."""
    if f.group_of(name):
        return False
    tokens = name_tokens(name)
    return _stem(m.value[1]) in tokens or bool(tokens & COUNT_WORDS)


def digits(f: Filler) -> list[Mention]:
    """Free numbers written in digits (``two sides`` counts things; it is no value unless
    the word after it names the parameter)."""
    return [m for m in f.free("number") if not m.text[:1].isalpha()]


def _fill_groups_by_unit(f: Filler) -> None:
    """``charges of 5C and 7C``: once one member of a group took a number with a unit, the
    others take the next free numbers with that same unit, in order."""
    for group in f.groups:
        filled = [n for n in group if f.result.evidence.get(n, {}).get("source") == "number"]
        open_members = [n for n in group if n not in f.result.arguments]
        if not filled or not open_members:
            last = None
        else:
            last = next(
                (m for m in f.mentions if m.start == f.result.evidence[filled[-1]]["start"]), None
            )
        if last is None or last.kind != "number" or not last.value[1]:
            continue
        unit = last.value[1]
        same = [m for m in digits(f) if m.value[1] == unit and m.start > last.start]
        for name, m in zip(open_members, same, strict=False):
            if fits_number(f.props[name], m.value[0]):
                _take(f, name, m, 0.7, "unit")


def _fill_groups_in_order(f: Filler) -> None:
    """``the GCD of 12 and 18`` for ``num1``/``num2``: as many free numbers as the group's open
    required members (or all its open members), in order."""
    for group in f.groups:
        spec = f.props[group[0]]
        if type_of(spec) not in ("integer", "number"):
            continue
        open_members = [n for n in group if n not in f.result.arguments]
        needed = [n for n in open_members if f.is_required(n)]
        numbers = [m for m in digits(f) if fits_number(spec, m.value[0])]
        for members in (open_members, needed):
            if members and len(numbers) == len(members):
                for name, m in zip(members, numbers, strict=True):
                    _take(f, name, m, 0.6, "order")
                break


def _fill_the_last_one(f: Filler) -> None:
    """One number left and one required numeric parameter left (or the schema's only numeric
    parameter): it is that one."""
    params = f.open_params("integer", "number")
    needed = [n for n in params if f.is_required(n)]
    only = [n for n in f.props if type_of(f.props[n]) in ("integer", "number")]
    for names in (needed, params if len(only) == 1 else []):
        if len(names) != 1:
            continue
        spec = f.props[names[0]]
        numbers = [m for m in digits(f) if fits_number(spec, m.value[0])]
        if len(numbers) == 1:
            _take(f, names[0], numbers[0], 0.6, "number")
            return
