"""Schema-guided argument extraction: fill a tool's arguments from a prompt without an LLM.

:func:`extract_arguments` is pure and deterministic (``now`` anchors relative dates). It finds
typed mentions in the prompt (quoted strings, emails, URLs, dates and times, numbers with
units, booleans, enum values, lists, proper names after a preposition) and gives each to the
parameter whose name and description fit it best. A required parameter it cannot fill is
listed in ``missing``: it never guesses. The result is checked against the schema
(:func:`toolrun.registry.schema.argument_errors`); a value that fails is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from toolrun.registry.schema import argument_errors
from toolrun.response import to_jsonable

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "by",
        "with",
        "from",
        "and",
        "or",
        "is",
        "are",
        "be",
        "was",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "what",
        "which",
        "who",
        "whom",
        "how",
        "do",
        "does",
        "please",
        "me",
        "my",
        "i",
        "you",
        "your",
        "we",
        "our",
        "can",
        "could",
        "would",
        "should",
        "will",
        "shall",
        "get",
        "give",
        "find",
        "show",
        "tell",
        "use",
        "using",
        "via",
        "as",
        "into",
        "about",
        "than",
        "then",
        "now",
        "same",
        "again",
        "some",
        "any",
        "all",
        "e",
        "g",
        "eg",
    ]
)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
LOCATION_WORDS = frozenset(
    [
        "city",
        "location",
        "place",
        "country",
        "town",
        "region",
        "destination",
        "address",
        "where",
        "area",
    ]
)
TRUE_WORDS = frozenset({"true", "yes", "on", "enable", "enabled"})
FALSE_WORDS = frozenset({"false", "no", "off", "disable", "disabled"})
CURRENCY = {"$": "usd", "€": "eur", "£": "gbp"}

_QUOTED = re.compile(r'"([^"\n]*)"|“([^”\n]*)”|\'([^\'\n]*)\'(?!\w)')
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"\bhttps?://[^\s\"'<>]+", re.I)
_ISO = re.compile(r"\b(\d{4}-\d{2}-\d{2})(?:[T ](\d{1,2}:\d{2}(?::\d{2})?))?\b")
_CLOCK = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*(am|pm)\b|\b(\d{1,2}):(\d{2})\b", re.I)
_RELATIVE = re.compile(
    r"\b(today|tomorrow|yesterday|(?:next|this|on)\s+(?:" + "|".join(WEEKDAYS) + r")|"
    r"in\s+(\d+)\s+days?)\b",
    re.I,
)
_NUMBER = re.compile(r"(?<![\w.])([$€£])?\s?(-?\d+(?:[.,]\d+)*)(?:\s?(%|[a-zA-Z]+\b))?(?![\w-])")
_PATH = re.compile(r"(?<![\w/])(?:~|\.{1,2})?/[\w./-]*|\b[\w-]*[A-Za-z][\w-]*\.[a-z0-9]{2,4}\b")
_PROPER = re.compile(
    r"\b(?:in|at|for|near|from|to|of)\s+((?:[A-Z][\w'\u2019-]*)(?:\s+[A-Z][\w'\u2019-]*)*)"
)
_LOWER_PLACE = re.compile(
    r"\b(?:in|at|for|near|from)\s+([a-z][\w'\u2019-]+(?:\s+(?!(?:in|at|for|on|with|and|or|to|please|"
    r"now|today|tomorrow)\b)[a-z][\w'\u2019-]+)?)"
)
_ITEM = r"[\w'-]+(?:\s+(?!(?:and|or)\b)[\w'-]+)?"
_LIST = re.compile(
    r"\s*(?::|=|are|is|of)?\s*(" + _ITEM + r"(?:\s*,\s*" + _ITEM + r")*\s*,?\s*(?:and|or|&)\s+"
    r"[\w'-]+(?:\s+(?!(?:and|or|with|in|for|at|to)\b)[\w'-]+)?)"
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_SPLIT = re.compile(r"[_\W]+|(?<=[a-z])(?=[A-Z])")


@dataclass(frozen=True)
class Mention:
    """A typed value found in the prompt at ``[start, end)``."""

    kind: str
    value: Any
    start: int
    end: int
    text: str
    context: frozenset[str] = frozenset()


@dataclass
class Extraction:
    """What :func:`extract_arguments` found: the arguments, the required parameters it could
    not fill, a confidence in ``[0, 1]`` and the prompt span behind each argument."""

    arguments: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    confidence: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejected: list[dict[str, str]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing

    def explicit(self) -> dict[str, Any]:
        """The arguments the prompt itself gave (not the schema's defaults)."""
        return {
            k: v
            for k, v in self.arguments.items()
            if self.evidence.get(k, {}).get("source") != "default"
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "arguments": to_jsonable(self.arguments),
            "missing": list(self.missing),
            "confidence": dict(self.confidence),
            "evidence": dict(self.evidence),
        }


def words(text: str) -> list[str]:
    """Lower-case words of ``text``, splitting snake_case and camelCase."""
    return [w.lower() for w in _SPLIT.split(text) if w and not w.isdigit()]


def param_tokens(name: str, spec: Mapping[str, Any]) -> set[str]:
    """Words a prompt may use for a parameter: its name's parts and its description's."""
    tokens = set(words(name))
    description = str(spec.get("description") or spec.get("title") or "")
    tokens |= {w for w in words(description) if w not in STOPWORDS and len(w) > 2}
    return tokens | {_stem(t) for t in tokens}


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _context(prompt: str, start: int, end: int, before: int = 4, after: int = 1) -> frozenset[str]:
    """Words near a mention, within its clause (commas, semicolons and digits end it)."""
    left_text = re.split(r"[,;.!?\d]", prompt[:start])[-1]
    right_text = re.split(r"[,;.!?\d]", prompt[end:])[0]
    left = [w.lower() for w in _WORD.findall(left_text)][-before:]
    right = [w.lower() for w in _WORD.findall(right_text)][:after]
    found = set(left + right)
    return frozenset(found | {_stem(w) for w in found})


def _explicit_value(raw: str, spec: Mapping[str, Any]) -> Any:
    """``raw`` (a word, number or quoted text the prompt assigned to a parameter) as a value of
    the parameter's type, or None when it is not one."""
    kind = _type_of(spec)
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


def _type_of(spec: Mapping[str, Any]) -> str:
    kind = spec.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None:
        for key in ("anyOf", "oneOf"):
            for option in spec.get(key) or ():
                if isinstance(option, Mapping) and option.get("type") not in (None, "null"):
                    return _type_of(option)
        if "enum" in spec:
            return "string"
    return str(kind or "string")


# -- finding mentions ------------------------------------------------------------------------


def _overlaps(start: int, end: int, taken: list[tuple[int, int]]) -> bool:
    return any(start < b and a < end for a, b in taken)


def find_mentions(prompt: str, now: datetime) -> list[Mention]:
    """Every typed value in ``prompt``; earlier kinds win overlapping spans."""
    found: list[Mention] = []
    taken: list[tuple[int, int]] = []

    def add(kind: str, value: Any, start: int, end: int) -> None:
        if _overlaps(start, end, taken):
            return
        taken.append((start, end))
        found.append(
            Mention(kind, value, start, end, prompt[start:end], _context(prompt, start, end))
        )

    for m in _QUOTED.finditer(prompt):
        text = next(g for g in m.groups() if g is not None)
        add("quoted", text, m.start(), m.end())
    for m in _URL.finditer(prompt):
        url = m.group(0).rstrip(".,;)")
        add("url", url, m.start(), m.start() + len(url))
    for m in _EMAIL.finditer(prompt):
        add("email", m.group(0), m.start(), m.end())
    for m in _ISO.finditer(prompt):
        day = _safe_date(m.group(1))
        if day is not None:
            clock = _parse_clock(m.group(2)) if m.group(2) else None
            add("datetime" if clock else "date", (day, clock), m.start(), m.end())
    for m in _RELATIVE.finditer(prompt):
        add("date", (_relative_day(m.group(1).lower(), m.group(2), now), None), m.start(), m.end())
    for m in _CLOCK.finditer(prompt):
        hour = int(m.group(1) or m.group(4))
        minute = int(m.group(2) or m.group(5) or 0)
        if m.group(3):
            if not 1 <= hour <= 12:
                continue
            hour = hour % 12 + (12 if m.group(3).lower() == "pm" else 0)
        if hour < 24 and minute < 60:
            add("time", time(hour, minute), m.start(), m.end())
    for m in _PATH.finditer(prompt):
        if len(m.group(0)) > 1:
            add("path", m.group(0), m.start(), m.end())
    for m in _NUMBER.finditer(prompt):
        number = _parse_number(m.group(2))
        if number is None:
            continue
        unit = (m.group(3) or "").lower()
        if unit and unit != "%" and unit in STOPWORDS:
            unit = ""
        end = m.end() if unit else m.end(2)
        currency = CURRENCY.get(m.group(1) or "")
        mention_unit = currency or unit
        value = (number, mention_unit)
        start = m.start(1) if m.group(1) else m.start(2)
        if _overlaps(start, end, taken):
            continue
        taken.append((start, end))
        extra = {mention_unit, "price", "cost", "amount"} if currency else {mention_unit}
        extra |= {"percent", "percentage"} if unit == "%" else set()
        ctx = _context(prompt, start, end) | frozenset(w for w in extra if w)
        found.append(Mention("number", value, start, end, prompt[start:end], ctx))
    return sorted(found, key=lambda m: m.start)


def _safe_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _parse_clock(text: str) -> time | None:
    parts = [int(p) for p in text.split(":")]
    try:
        return time(parts[0], parts[1], parts[2] if len(parts) > 2 else 0)
    except ValueError:
        return None


def _relative_day(phrase: str, days: str | None, now: datetime) -> date:
    today = now.date()
    if phrase == "today":
        return today
    if phrase == "tomorrow":
        return today + timedelta(days=1)
    if phrase == "yesterday":
        return today - timedelta(days=1)
    if days is not None:
        return today + timedelta(days=int(days))
    qualifier, weekday = phrase.split()
    ahead = (WEEKDAYS.index(weekday) - today.weekday()) % 7
    if ahead == 0 and qualifier == "next":
        ahead = 7
    return today + timedelta(days=ahead)


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


# -- filling parameters ----------------------------------------------------------------------


class _Filler:
    def __init__(self, prompt: str, schema: Mapping[str, Any], now: datetime) -> None:
        self.prompt = prompt
        self.lower = prompt.lower()
        self.now = now
        self.props: dict[str, Mapping[str, Any]] = dict(schema.get("properties") or {})
        self.required = [r for r in schema.get("required") or () if r in self.props]
        self.mentions = find_mentions(prompt, now)
        self.used: list[tuple[int, int]] = []
        self.result = Extraction()

    def take(
        self, name: str, value: Any, start: int, end: int, confidence: float, source: str
    ) -> None:
        self.result.arguments[name] = value
        self.result.confidence[name] = round(confidence, 2)
        self.result.evidence[name] = {
            "text": self.prompt[start:end],
            "start": start,
            "end": end,
            "source": source,
        }
        self.used.append((start, end))

    def free(self, kind: str | tuple[str, ...]) -> list[Mention]:
        kinds = (kind,) if isinstance(kind, str) else kind
        return [
            m for m in self.mentions if m.kind in kinds and not _overlaps(m.start, m.end, self.used)
        ]

    def open_params(self, *types: str) -> list[str]:
        return [
            n
            for n, s in self.props.items()
            if n not in self.result.arguments and (not types or _type_of(s) in types)
        ]

    def run(self) -> Extraction:
        self.fill_explicit()
        self.fill_enums()
        self.fill_formats()
        self.fill_booleans()
        self.fill_numbers()
        self.fill_arrays()
        self.fill_strings()
        self.fill_defaults()
        self.validate()
        self.result.missing = [r for r in self.required if r not in self.result.arguments]
        return self.result

    # explicit: the prompt names the parameter ("a=2", "unit: F", "limit is 10") -------------

    def fill_explicit(self) -> None:
        for name in self.open_params():
            spec = self.props[name]
            link = r"\s*[=:]\s*" if len(name) == 1 else r"\s*(?:[=:]|\bis\b|\bequals?\b)\s*"
            pattern = (
                r"(?<![\w.])"
                + re.escape(name)
                + link
                + r"(\"[^\"]*\"|'[^']*'|-?\d+(?:\.\d+)?|[A-Za-z_][\w.-]*)"
            )
            for m in re.finditer(pattern, self.prompt, flags=re.IGNORECASE):
                start, end = m.span(1)
                if _overlaps(start, end, self.used):
                    continue
                value = _explicit_value(m.group(1), spec)
                if value is not None:
                    self.take(name, value, start, end, 0.98, "explicit")
                    break

    # enums ---------------------------------------------------------------------------------

    def fill_enums(self) -> None:
        for name in self.open_params():
            spec = self.props[name]
            options = spec.get("enum") or (spec.get("items") or {}).get("enum")
            if not options or _type_of(spec) == "array":
                continue
            best: tuple[float, int, int, Any] | None = None
            for option in options:
                for phrase, score in _enum_phrases(option, spec):
                    for m in re.finditer(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", self.lower):
                        if len(phrase) == 1 and not self._letter_is_a_choice(m.start(), m.end()):
                            continue
                        if _overlaps(m.start(), m.end(), self.used):
                            continue
                        if best is None or score > best[0]:
                            best = (score, m.start(), m.end(), option)
            if best is not None:
                self.take(name, best[3], best[1], best[2], best[0], "enum")

    def _letter_is_a_choice(self, start: int, end: int) -> bool:
        """A one-letter enum value counts only standing apart ("in F", "unit: C")."""
        before = self.prompt[max(0, start - 6) : start].lower()
        original = self.prompt[start:end]
        return original.isupper() or bool(re.search(r"(in|unit|:|=)\s*$", before))

    # formats: email, url, date, time -------------------------------------------------------

    def fill_formats(self) -> None:
        for name in self.open_params("string"):
            spec = self.props[name]
            fmt = str(spec.get("format") or "")
            tokens = set(words(name))
            if fmt == "email" or "email" in tokens or "mail" in tokens:
                self._first(name, "email", lambda v: v, 0.95)
            elif fmt in ("uri", "url", "iri") or tokens & {
                "url",
                "uri",
                "link",
                "website",
                "endpoint",
            }:
                self._first(name, "url", lambda v: v, 0.95)
            elif fmt in ("date", "date-time", "time") or tokens & {
                "date",
                "time",
                "when",
                "day",
                "datetime",
                "deadline",
            }:
                self._fill_moment(name, fmt, tokens)

    def _first(self, name: str, kind: str, convert: Any, confidence: float) -> None:
        free = self.free(kind)
        if free:
            m = free[0]
            self.take(name, convert(m.value), m.start, m.end, confidence, kind)

    def _fill_moment(self, name: str, fmt: str, tokens: set[str]) -> None:
        days = self.free(("date", "datetime"))
        clocks = self.free("time")
        if not fmt:
            fmt = "time" if tokens & {"time"} and not tokens & {"date", "day"} else "date"
            if (days and clocks) or (days and days[0].kind == "datetime"):
                fmt = "date-time"
            if not days and clocks:
                fmt = "time"
        if fmt == "time":
            if clocks:
                m = clocks[0]
                self.take(name, m.value.isoformat(), m.start, m.end, 0.9, "time")
            return
        if not days:
            return
        day_m = days[0]
        day, clock = day_m.value
        if fmt == "date":
            self.take(name, day.isoformat(), day_m.start, day_m.end, 0.9, "date")
            return
        start, end = day_m.start, day_m.end
        if clock is None and clocks:
            clock = clocks[0].value
            self.used.append((clocks[0].start, clocks[0].end))
            start, end = min(start, clocks[0].start), max(end, clocks[0].end)
        moment = datetime.combine(day, clock or time(0, 0))
        if self.now.tzinfo is not None:
            moment = moment.replace(tzinfo=self.now.tzinfo)
        self.take(name, moment.isoformat(), start, end, 0.9 if clock else 0.7, "datetime")

    # booleans ------------------------------------------------------------------------------

    def fill_booleans(self) -> None:
        for name in self.open_params("boolean"):
            tokens = set(words(name)) | {
                t for t in param_tokens(name, self.props[name]) if len(t) > 3
            }
            found = self._boolean(tokens)
            if found is not None:
                value, start, end, confidence = found
                self.take(name, value, start, end, confidence, "boolean")

    def _boolean(self, tokens: set[str]) -> tuple[bool, int, int, float] | None:
        alternatives = "|".join(sorted((re.escape(t) for t in tokens), key=len, reverse=True))
        if not alternatives:
            return None
        patterns = (
            (
                r"\b(without|no|not|disable|disabled|don't|skip)\s+(?:\w+\s+)?(?:"
                + alternatives
                + r")\w*",
                False,
                0.85,
            ),
            (
                r"\b(with|enable|enabled|include|including)\s+(?:\w+\s+)?(?:"
                + alternatives
                + r")\w*",
                True,
                0.85,
            ),
            (
                r"\b(?:"
                + alternatives
                + r")\w*\s*(?:[:=]|is|set to)?\s*(true|false|yes|no|on|off|enabled|disabled)\b",
                None,
                0.9,
            ),
        )
        for pattern, value, confidence in patterns:
            m = re.search(pattern, self.lower)
            if m and not _overlaps(m.start(), m.end(), self.used):
                if value is None:
                    value = m.group(1) in TRUE_WORDS
                return value, m.start(), m.end(), confidence
        return None

    # numbers -------------------------------------------------------------------------------

    def fill_numbers(self) -> None:
        params = self.open_params("integer", "number")
        numbers = self.free("number")
        pairs = []
        for name in params:
            tokens = param_tokens(name, self.props[name])
            for m in numbers:
                if self._fits(name, m.value[0]):
                    pairs.append((len(tokens & m.context), name, m))
        pairs.sort(key=lambda p: (-p[0], p[2].start))
        for score, name, m in pairs:
            if score == 0 or name in self.result.arguments or _overlaps(m.start, m.end, self.used):
                continue
            self.take(
                name,
                self._number(name, m.value[0]),
                m.start,
                m.end,
                min(0.95, 0.6 + 0.15 * score),
                "number",
            )
        left = [n for n in params if n not in self.result.arguments]
        free = [
            m
            for m in self.free("number")
            if not any(self._fits(n, m.value[0]) is False for n in left)
        ]
        if len(left) == len(free) == 1 and self._fits(left[0], free[0].value[0]):
            m = free[0]
            self.take(left[0], self._number(left[0], m.value[0]), m.start, m.end, 0.6, "number")

    def _fits(self, name: str, number: int | float) -> bool:
        return _type_of(self.props[name]) == "number" or float(number).is_integer()

    def _number(self, name: str, number: int | float) -> int | float:
        return int(number) if _type_of(self.props[name]) == "integer" else number

    # arrays --------------------------------------------------------------------------------

    def fill_arrays(self) -> None:
        for name in self.open_params("array"):
            spec = self.props[name]
            items = spec.get("items") if isinstance(spec.get("items"), Mapping) else {}
            item_type = _type_of(items or {})
            if item_type in ("integer", "number"):
                free = self.free("number")
                if len(free) >= 2:
                    values = [m.value[0] for m in free]
                    if item_type == "integer":
                        if not all(float(v).is_integer() for v in values):
                            continue
                        values = [int(v) for v in values]
                    self.take(name, values, free[0].start, free[-1].end, 0.7, "list")
                continue
            found = self._word_list(param_tokens(name, spec), (items or {}).get("enum"))
            if found is not None:
                values, start, end = found
                self.take(name, values, start, end, 0.75, "list")

    def _word_list(self, tokens: set[str], options: Any) -> tuple[list[str], int, int] | None:
        """``a, b and c``: right after a word naming the parameter, else anywhere."""
        cues = [
            m.end()
            for m in _WORD.finditer(self.prompt)
            if m.group(0).lower() in tokens or _stem(m.group(0).lower()) in tokens
        ]
        starts = cues + [m.start() for m in _WORD.finditer(self.prompt)]
        for position in starts:
            m = _LIST.match(self.prompt, position)
            if m is None or _overlaps(m.start(1), m.end(1), self.used):
                continue
            parts = [p for p in re.split(r"\s*,\s*|\s+(?:and|or|&)\s+", m.group(1)) if p]
            if options:
                lowered = {str(o).lower(): o for o in options}
                if not all(p.lower() in lowered for p in parts):
                    continue
                return [lowered[p.lower()] for p in parts], m.start(1), m.end(1)
            return parts, m.start(1), m.end(1)
        return None

    # strings -------------------------------------------------------------------------------

    def fill_strings(self) -> None:
        params = self.open_params("string")
        for name in params:
            tokens = param_tokens(name, self.props[name])
            for m in self.free("quoted"):
                if tokens & m.context:
                    self.take(name, m.value, m.start, m.end, 0.9, "quoted")
                    break
        for name in self.open_params("string"):
            if set(words(name)) & {"path", "file", "directory", "dir", "folder", "filename"} or (
                {"path", "directory", "file"} & param_tokens(name, self.props[name])
            ):
                paths = self.free("path")
                named = [m for m in paths if param_tokens(name, self.props[name]) & m.context]
                pick = (named or paths)[:1]
                if pick:
                    self.take(
                        name,
                        pick[0].value,
                        pick[0].start,
                        pick[0].end,
                        0.8 if named else 0.6,
                        "path",
                    )
        for name in self.open_params("string"):
            if param_tokens(name, self.props[name]) & LOCATION_WORDS:
                self._place(name)
        for name in self.open_params("string"):
            self._named_value(name)
        quoted = self.free("quoted")
        left = self.open_params("string")
        if quoted and left and len(quoted) == len(left):
            for name, m in zip(left, quoted, strict=True):
                self.take(name, m.value, m.start, m.end, 0.6, "quoted")

    def _place(self, name: str) -> None:
        for pattern, confidence in ((_PROPER, 0.85), (_LOWER_PLACE, 0.55)):
            for m in pattern.finditer(self.prompt):
                value = m.group(1)
                if value.lower() in STOPWORDS or _overlaps(m.start(1), m.end(1), self.used):
                    continue
                if pattern is _LOWER_PLACE and value.lower() in _enum_words(self.props):
                    continue
                self.take(name, value, m.start(1), m.end(1), confidence, "place")
                return

    def _named_value(self, name: str) -> None:
        """``<parameter name> [is|=|:|called|named] <value>``: the word after the name."""
        names = [re.escape(w) for w in (name, name.replace("_", " "), *words(name)[-1:]) if w]
        pattern = r"\b(?:" + "|".join(names) + r")\b\s*(?:is|=|:|called|named|of)?\s*([^\s,;]+)"
        for m in re.finditer(pattern, self.prompt, re.I):
            value = m.group(1).strip(".!?")
            if (
                value
                and value.lower() not in STOPWORDS
                and not _overlaps(m.start(1), m.end(1), self.used)
            ):
                for quoted in self.free("quoted"):
                    if quoted.start == m.start(1):
                        value = quoted.value
                        self.take(name, value, quoted.start, quoted.end, 0.85, "quoted")
                        return
                self.take(name, value, m.start(1), m.start(1) + len(value), 0.7, "named")
                return

    # defaults and validation ---------------------------------------------------------------

    def fill_defaults(self) -> None:
        for name, spec in self.props.items():
            if name not in self.result.arguments and "default" in spec:
                self.result.arguments[name] = spec["default"]
                self.result.confidence[name] = 1.0
                self.result.evidence[name] = {
                    "text": "",
                    "start": None,
                    "end": None,
                    "source": "default",
                }

    def validate(self) -> None:
        schema = {"type": "object", "properties": self.props}
        for error in argument_errors(schema, self.result.arguments):
            key = error["path"].split("/")[1] if error["path"].count("/") >= 1 else ""
            if key in self.result.arguments:
                self.result.arguments.pop(key)
                self.result.confidence.pop(key, None)
                self.result.evidence.pop(key, None)
                self.result.rejected.append(error)


def _enum_phrases(option: Any, spec: Mapping[str, Any]) -> list[tuple[str, float]]:
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


def _enum_words(props: Mapping[str, Mapping[str, Any]]) -> set[str]:
    found: set[str] = set()
    for spec in props.values():
        for option in spec.get("enum") or ():
            found |= {p for p, _ in _enum_phrases(option, spec)}
    return found


def extract_arguments(
    prompt: str, schema: Mapping[str, Any], *, now: datetime | None = None
) -> Extraction:
    """Fill the arguments of ``schema`` (a tool's ``input_schema``) from ``prompt``; see the
    module docstring. ``now`` anchors "tomorrow", "next Monday" (default: the current time)."""
    return _Filler(prompt, schema, now or datetime.now(UTC)).run()
