"""The words of prompts and schemas: stop words, splitting, stemming, context windows."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


def wordlist(text: str) -> tuple[str, ...]:
    """The whitespace-separated words of ``text``, in order."""
    return tuple(text.split())


def wordset(text: str) -> frozenset[str]:
    return frozenset(wordlist(text))


STOPWORDS = wordset(
    """
    a an the of to in on at for by with from and or is are be was it its this that these
    those what which who whom how do does please me my i you your we our can could would
    should will shall get give find show tell use using via as into about than then now same
    again some any all e g eg
    """
)
# Words a description uses for any parameter: they say nothing about which value is meant.
GENERIC = wordset(
    """
    name names value values type types specific specified given certain particular number
    numbers default optional required parameter parameters option options data information
    info details detail list string integer float boolean array dict object id identifier
    format provided want used like such etc example must also only one whether if set true
    false new current desired
    """
)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    *("january", "february", "march", "april", "may", "june", "july", "august"),
    *("september", "october", "november", "december"),
)
LOCATION_WORDS = wordset(
    """
    city location place country town region destination address where area state county
    province zone venue
    """
)
PERSON_WORDS = wordset(
    """
    person actor actress player artist author singer director celebrity scientist composer
    writer painter athlete musician inventor creator sculptor user owner customer patient
    employee manager partner driver
    """
)

# Words after a value that start the next phrase: what follows them is about something else.
_ENDS_AFTER = wordset("and or with for of at in to from by on but than while when if as is are")
# Words that open a clause: what comes before them is about something else.
_STARTS_CLAUSE = wordset("when if where while because since that which who whose unless until")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_SPLIT = re.compile(r"[_\W]+|(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")


def words(text: str) -> list[str]:
    """Lower-case words of ``text``, splitting snake_case, camelCase and letters from digits."""
    return [w.lower() for w in _SPLIT.split(text) if w and not w.isdigit()]


_COMPOUND_ENDS = ("name", "id", "type", "code", "count", "date", "time", "number", "num")
_SUFFIXES = ("ings", "ing", "ions", "ion", "ed", "ly", "ments", "ment")


def _stem(word: str) -> str:
    """A light stem: a plural ending off, then a derivational one, then a final ``e``
    (``accelerating``, ``acceleration``, ``accelerate`` -> ``accelerat``); a final ``y`` after
    a consonant becomes ``i`` (``city``, ``cities`` -> ``citi``)."""
    if len(word) > 4 and word.endswith(("ches", "shes", "xes", "sses")):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            word = word[: -len(suffix)]
            break
    if len(word) > 4 and word.endswith("e"):
        return word[:-1]
    if len(word) > 3 and word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "i"
    return word


def param_tokens(name: str, spec: Mapping[str, Any]) -> set[str]:
    """Words a prompt may use for a parameter: its name's parts and its description's."""
    tokens = set(words(name))
    tokens |= {w for w in description_words(spec) if w not in GENERIC}
    return tokens | {_stem(t) for t in tokens}


def name_tokens(name: str) -> set[str]:
    """A parameter name's words and their stems, without the generic ones (``name``, ``id``);
    a closed compound loses its generic end (``username`` -> ``user``)."""
    found = {w for w in words(name) if w not in GENERIC or len(words(name)) == 1}
    for word in list(found):
        for end in _COMPOUND_ENDS:
            if word.endswith(end) and len(word) - len(end) >= 3:
                found.add(word[: -len(end)])
    return found | {_stem(w) for w in found}


def unit_tokens(name: str, spec: Mapping[str, Any]) -> set[str]:
    """Units a parameter names: its name's words and its description's tokens as written,
    compounds whole (``kg`` in "mass (kg)", but not in "kJ/kg/K")."""
    description = str(spec.get("description") or "")
    found = {t.strip("()[]{},.;:'\"").lower() for t in description.split()}
    found = {t for t in found if t and t not in STOPWORDS}
    return name_tokens(name) | found | {_stem(t) for t in found}


def description_words(spec: Mapping[str, Any]) -> list[str]:
    description = str(spec.get("description") or spec.get("title") or "")
    return [w for w in words(description) if w not in STOPWORDS and len(w) > 1]


def neighbours(
    prompt: str, start: int, end: int, left: int = 0, right: int | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The words before a mention (nearest first, at most four) and after it (at most two,
    up to a word that starts another phrase), within its clause (punctuation and digits end
    it) and between ``left`` and ``right``, where the neighbouring values are. A value right
    after a comma looks across it (``a tennis player, Serena Williams``)."""
    clauses = re.split(r"[,;.!?\d]", prompt[left:start])
    left_text = clauses[-1]
    if not left_text.strip() and len(clauses) > 1 and prompt[left:start].rstrip().endswith(","):
        left_text = clauses[-2]
    right_text = re.split(r"[,;.!?\d]", prompt[end:right])[0]
    before: list[str] = []
    for word in reversed(_WORD.findall(left_text)):
        if word.lower() in _STARTS_CLAUSE or len(before) == 4:
            break
        before.append(word.lower())
    after: list[str] = []
    for word in _WORD.findall(right_text)[:2]:
        if word.lower() in _ENDS_AFTER:
            break
        after.append(word.lower())
    return tuple(before), tuple(after)
