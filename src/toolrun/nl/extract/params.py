"""What a schema says about its parameters: types, roles and the ones given in order.

A *role* is what kind of value a parameter takes, read from its name and description
(a place, a person, a formula, a path). An *ordered group* is a set of parameters of one type
that a prompt gives one after the other: ``num1``/``num2``, ``start_city``/``end_city``,
``from_currency``/``to_currency``, ``x``/``y``/``z``, "the first ..."/"the second ...".
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from toolrun.nl.extract.text import (
    LOCATION_WORDS,
    PERSON_WORDS,
    _stem,
    description_words,
    words,
)

Props = Mapping[str, Mapping[str, Any]]

# (first, second): the word that names the earlier value of a pair, and its partner.
PARTNERS = (
    ("start", "end"),
    ("from", "to"),
    ("origin", "destination"),
    ("source", "target"),
    ("source", "destination"),
    ("min", "max"),
    ("minimum", "maximum"),
    ("lower", "upper"),
    ("low", "high"),
    ("initial", "final"),
    ("first", "second"),
    ("begin", "end"),
    ("departure", "arrival"),
    ("departure", "return"),
    ("in", "out"),
    ("old", "new"),
    ("home", "away"),
    ("base", "target"),
)
ORDINALS = ("first", "second", "third", "fourth", "fifth")
FORMULA_WORDS = frozenset({"function", "equation", "expression", "formula", "polynomial"})
PATH_WORDS = frozenset({"path", "file", "directory", "dir", "folder", "filename"})
MOMENT_WORDS = frozenset({"date", "time", "when", "day", "datetime", "deadline", "birthday"})


def type_of(spec: Mapping[str, Any]) -> str:
    """The JSON type of a parameter (``string`` when the schema does not say)."""
    kind = spec.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None:
        for key in ("anyOf", "oneOf"):
            for option in spec.get(key) or ():
                if isinstance(option, Mapping) and option.get("type") not in (None, "null"):
                    return type_of(option)
        if "enum" in spec:
            return "string"
    return str(kind or "string")


def item_spec(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    items = spec.get("items")
    return items if isinstance(items, Mapping) else {}


def role_words(name: str, spec: Mapping[str, Any]) -> set[str]:
    """The name's words and the description's first few content words, stemmed."""
    found = set(words(name)) | set(description_words(spec)[:4])
    return found | {_stem(w) for w in found}


def is_place(name: str, spec: Mapping[str, Any]) -> bool:
    return bool(role_words(name, spec) & LOCATION_WORDS)


def is_person(name: str, spec: Mapping[str, Any]) -> bool:
    return bool(set(words(name)) & PERSON_WORDS) or (
        "name" in words(name) and bool(set(description_words(spec)[:4]) & PERSON_WORDS)
    )


def is_formula(name: str, spec: Mapping[str, Any]) -> bool:
    return bool(set(words(name)) & FORMULA_WORDS) or (
        bool(set(description_words(spec)[:3]) & FORMULA_WORDS)
    )


def is_moment(name: str) -> bool:
    """A date or time parameter (its values come from the prompt's dates and times)."""
    return bool(set(words(name)) & MOMENT_WORDS)


def is_path(name: str, spec: Mapping[str, Any]) -> bool:
    return bool(set(words(name)) & PATH_WORDS)


def ordered_groups(props: Props) -> list[list[str]]:
    """Groups of same-typed parameters a prompt names in order, each in that order."""
    groups: list[list[str]] = []
    taken: set[str] = set()

    def add(members: list[str]) -> None:
        members = [m for m in members if m not in taken]
        if len(members) >= 2:
            groups.append(members)
            taken.update(members)

    indexed: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
    for name, spec in props.items():
        m = re.fullmatch(r"(.*?[A-Za-z])_?(\d+)", name)
        if m:
            indexed[(m.group(1).lower(), type_of(spec))].append((int(m.group(2)), name))
    for members in indexed.values():
        add([n for _, n in sorted(members)])
    names = list(props)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if type_of(props[a]) != type_of(props[b]):
                continue
            order = _partners(words(a), words(b))
            if order is not None:
                add([a, b] if order else [b, a])
    add([n for n in ("x", "y", "z") if n in props and type_of(props[n]) == type_of(props["x"])])
    by_ordinal: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for name, spec in props.items():
        lead = description_words(spec)[:2]
        for index, ordinal in enumerate(ORDINALS):
            if ordinal in lead:
                by_ordinal[type_of(spec)].append((index, name))
    for members in by_ordinal.values():
        if len({i for i, _ in members}) == len(members):
            add([n for _, n in sorted(members)])
    return groups


def _partners(a: list[str], b: list[str]) -> bool | None:
    """True when ``a`` names the first of a pair and ``b`` the second, False when the other
    way round, None when they are no pair (they must differ in exactly one word)."""
    if len(a) != len(b) or not a:
        return None
    differ = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    if len(differ) != 1:
        return None
    x, y = a[differ[0]], b[differ[0]]
    for first, second in PARTNERS:
        if (x, y) == (first, second):
            return True
        if (x, y) == (second, first):
            return False
    return None
