"""The filler: one pass per kind of value, strongest evidence first.

A parameter the prompt names (``a=2``) comes first, then enum values and values a description
quotes, formatted strings (emails, URLs, dates), booleans, lists of numbers, numbers, free text,
lists of words; defaults last. Each pass takes only mentions no earlier pass used. Numbers, free
text and lists live in :mod:`.numbers`, :mod:`.strings`, :mod:`.phrases` and :mod:`.lists`;
what a parameter is (its type, its role, the parameters given in order) in :mod:`.params`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, time
from typing import Any

from toolrun.nl.extract import phrases, strings
from toolrun.nl.extract.dates import date_format, format_day
from toolrun.nl.extract.lists import fill_number_lists, fill_text_lists
from toolrun.nl.extract.mentions import Mention, _overlaps, find_mentions
from toolrun.nl.extract.numbers import fill_numbers
from toolrun.nl.extract.params import MOMENT_WORDS, ordered_groups, type_of
from toolrun.nl.extract.result import Extraction
from toolrun.nl.extract.text import _stem, name_tokens, param_tokens, unit_tokens, words
from toolrun.nl.extract.values import (
    as_number,
    described_options,
    enum_phrases,
    explicit_value,
)
from toolrun.registry.schema import argument_errors

# Free text, strongest evidence first (see strings.py and phrases.py).
STRING_PASSES: tuple[Callable[[Filler], None], ...] = (
    strings.formulas,
    strings.quoted_by_cue,
    strings.paths,
    phrases.pairs,
    strings.after_cue,
    strings.before_role,
    strings.names_holding_a_cue,
    phrases.places,
    phrases.before_cue,
    phrases.topics,
    strings.names_by_affinity,
    strings.leftovers,
)
TRUE_WORDS = frozenset({"true", "yes", "on", "enable", "enabled"})
# Verbs in a flag's name that say what to do with the thing it names ("include_details").
FLAG_VERBS = frozenset(
    {"include", "includes", "show", "get", "return", "is", "has", "want", "use", "with", "enable"}
    | {"allow", "need", "needs", "add", "display", "fetch", "list", "retrieve", "be"}
)
URL_WORDS = frozenset({"url", "uri", "link", "website", "endpoint"})


class Filler:
    """The state of one extraction: the mentions, what is used, what is filled."""

    def __init__(self, prompt: str, schema: Mapping[str, Any], now: datetime) -> None:
        self.prompt = prompt
        self.lower = prompt.lower()
        self.now = now
        self.props: dict[str, Mapping[str, Any]] = {
            k: v if isinstance(v, Mapping) else {}
            for k, v in (schema.get("properties") or {}).items()
        }
        self.required = [r for r in schema.get("required") or () if r in self.props]
        self.mentions = find_mentions(prompt, now)
        self.groups = ordered_groups(self.props)
        self.used: list[tuple[int, int]] = []
        self.result = Extraction()

    # -- shared helpers ------------------------------------------------------------------------

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

    def is_free(self, start: int, end: int) -> bool:
        return not _overlaps(start, end, self.used)

    def free(self, kind: str | tuple[str, ...]) -> list[Mention]:
        kinds = (kind,) if isinstance(kind, str) else kind
        return [m for m in self.mentions if m.kind in kinds and self.is_free(m.start, m.end)]

    def open_params(self, *types: str) -> list[str]:
        return [
            n
            for n, s in self.props.items()
            if n not in self.result.arguments and (not types or type_of(s) in types)
        ]

    def is_required(self, name: str) -> bool:
        return name in self.required

    def group_of(self, name: str) -> list[str] | None:
        return next((g for g in self.groups if name in g), None)

    def affinity(self, name: str, mention: Mention) -> float:
        """How strongly ``mention`` points at parameter ``name``: a unit the description uses
        (``20 kg`` for a mass in kg) counts 3; a word of the name 2 next to the value (1 further
        before it); a word of the description 1 (0.5 further)."""
        named = name_tokens(name)
        described = param_tokens(name, self.props[name]) - named
        score = 0.0
        if {_stem(u) for u in mention.units} & unit_tokens(name, self.props[name]):
            score += 3
        near = [(w, d < 2) for d, w in enumerate(mention.before)] + [
            (w, True) for w in mention.after
        ]
        for word, close in near:
            stem = _stem(word)
            if word in named or stem in named:
                score += 2 if close else 1
            elif word in described or stem in described:
                score += 1 if close else 0.5
        context = mention.context
        if named and score and named <= (context | {_stem(w) for w in context}):
            score += 0.5  # every word of the name is there: "years" over "compounds per year"
        return score

    # -- the passes ----------------------------------------------------------------------------

    def run(self) -> Extraction:
        self.fill_explicit()
        self.fill_enums()
        self.fill_formats()
        self.fill_booleans()
        fill_number_lists(self)
        fill_numbers(self)
        for fill in STRING_PASSES:
            fill(self)
        fill_text_lists(self)
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
                + r"(\"[^\"]*\"|'[^']*'|-?\d+(?:\.\d+)?(?![\w.])|[A-Za-z_][\w.-]*)"
            )
            for m in re.finditer(pattern, self.prompt, flags=re.IGNORECASE):
                start, end = m.span(1)
                if not self.is_free(start, end):
                    continue
                value = explicit_value(m.group(1), spec)
                number = next(
                    (n for n in self.mentions if n.kind == "number" and n.start == start), None
                )
                if value is not None and number is not None and type_of(spec) != "string":
                    value = as_number(spec, number.value[0], number.value[1], name)
                    start, end = number.start, number.end
                if value is not None:
                    self.take(name, value, start, end, 0.98, "explicit")
                    break

    # enums, and the values a description quotes -----------------------------------------------

    def fill_enums(self) -> None:
        for name in self.open_params():
            spec = self.props[name]
            options = spec.get("enum")
            if not options or type_of(spec) == "array":
                continue
            best: tuple[float, int, int, Any] | None = None
            for option in options:
                for phrase, score in enum_phrases(option, spec):
                    for m in re.finditer(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", self.lower):
                        if len(phrase) == 1 and not self._letter_is_a_choice(m.start(), m.end()):
                            continue
                        if not self.is_free(m.start(), m.end()):
                            continue
                        if best is None or score > best[0]:
                            best = (score, m.start(), m.end(), option)
            if best is not None:
                self.take(name, best[3], best[1], best[2], best[0], "enum")
        for name in self.open_params("string"):
            for option in described_options(self.props[name]):
                found = re.search(r"(?<![\w-])" + re.escape(option.lower()) + r"(?!\w)", self.lower)
                if (
                    found
                    and self.is_free(found.start(), found.end())
                    and not self._inside_value(found.start(), found.end())
                ):
                    self.take(name, option, found.start(), found.end(), 0.75, "described")
                    break

    def _inside_value(self, start: int, end: int) -> bool:
        """Whether ``[start, end)`` is part of a longer number, date, name or other value."""
        return any(
            m.start < end
            and start < m.end
            and m.kind != "quoted"
            and (m.kind != "name" or (m.start, m.end) != (start, end))
            for m in self.mentions
        )

    def _letter_is_a_choice(self, start: int, end: int) -> bool:
        """A one-letter enum value counts only standing apart ("in F", "unit: C")."""
        before = self.prompt[max(0, start - 6) : start].lower()
        original = self.prompt[start:end]
        return original.isupper() or bool(re.search(r"(in|unit|:|=)\s*$", before))

    # formats: email, url, date, time -------------------------------------------------------

    def fill_formats(self) -> None:
        params = self.open_params("string")
        order = {n: i for g in self.groups for i, n in enumerate(g)}
        for name in sorted(params, key=lambda n: order.get(n, 0)):
            spec = self.props[name]
            fmt = str(spec.get("format") or "")
            tokens = set(words(name))
            lead = " ".join(words(str(spec.get("description") or ""))[:6])
            if fmt == "email" or {"email", "mail"} & tokens or "email address" in lead:
                self._first(name, "email", 0.95)
            elif fmt in ("uri", "url", "iri") or tokens & URL_WORDS:
                self._first(name, "url", 0.95)
            elif fmt in ("date", "date-time", "time") or tokens & MOMENT_WORDS:
                self._fill_moment(name, fmt, tokens)

    def _first(self, name: str, kind: str, confidence: float) -> None:
        free = self.free(kind)
        if free:
            m = free[0]
            self.take(name, m.value, m.start, m.end, confidence, kind)

    def _fill_moment(self, name: str, fmt: str, tokens: set[str]) -> None:
        spec = self.props[name]
        days = self.free(("date", "datetime"))
        clocks = self.free("time")
        pattern = date_format(spec)
        if pattern and "%d" not in pattern:
            months = self.free("month") or days
            if months:
                m = months[0]
                day = m.value if m.kind == "month" else m.value[0]
                self.take(name, day.strftime(pattern), m.start, m.end, 0.85, "date")
            return
        if not fmt:
            fmt = "time" if tokens & {"time"} and not tokens & {"date", "day"} else "date"
            if (days and clocks and "time" in tokens) or (days and days[0].kind == "datetime"):
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
            self.take(name, format_day(day, spec), day_m.start, day_m.end, 0.9, "date")
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
            found = self._boolean(tokens) or self._flag_named(name)
            if found is not None:
                value, start, end, confidence = found
                self.take(name, value, start, end, confidence, "boolean")

    def _flag_named(self, name: str) -> tuple[bool, int, int, float] | None:
        """``with details``, ``the full name``, ``in which year``: a flag whose own words
        (``include_details``, ``fullName``, ``want_year``) the prompt uses is asked for."""
        own = [w for w in words(name) if w not in FLAG_VERBS]
        spans = []
        for word in own:
            stem = _stem(word)[:5] if len(word) > 5 else _stem(word)
            m = re.search(r"\b" + re.escape(stem) + r"\w*", self.lower)
            if m is None or not self.is_free(m.start(), m.end()):
                return None
            spans.append(m.span())
        if not spans:
            return None
        return True, min(s for s, _ in spans), max(e for _, e in spans), 0.6

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
            if m and self.is_free(m.start(), m.end()):
                if value is None:
                    value = m.group(1) in TRUE_WORDS
                return value, m.start(), m.end(), confidence
        return None

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
