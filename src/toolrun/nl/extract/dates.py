"""Dates and times in a prompt, and a date written the way a parameter's description asks.

Found: ISO dates (``2024-06-01``, ``2024-06-01T10:30``), slashed dates (``2022/08/16``,
``08/16/2022``), dates with a month name (``March 10th, 2023``, ``10 December 2022``,
``Mar.11, 2022``), relative days (``tomorrow``, ``next Monday``, ``in 10 days``) and clock
times (``3pm``, ``17:45``). A date without a year takes the year of the next dated mention, else
the current one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from toolrun.nl.extract.text import MONTHS, WEEKDAYS

_MONTH = r"(?P<month>" + "|".join(m[:3] + r"(?:" + m[3:] + r")?" for m in MONTHS) + r")\.?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>\d{4})"
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{1,2}:\d{2}(?::\d{2})?))?\b")
_SLASHED = re.compile(r"\b(\d{4})/(\d{1,2})/(\d{1,2})\b|\b(\d{1,2})[/-](\d{1,2})[/-](\d{4})\b")
_MONTH_FIRST = re.compile(
    r"\b" + _MONTH + r"\s*" + _DAY + r"\b(?:,?\s*(?:of\s+)?" + _YEAR + r"\b)?", re.I
)
_DAY_FIRST = re.compile(
    r"\b(?:the\s+)?" + _DAY + r"\s+(?:of\s+)?" + _MONTH + r"\b(?:,?\s*" + _YEAR + r"\b)?", re.I
)
_MONTH_YEAR = re.compile(r"\b" + _MONTH + r"\s+" + _YEAR + r"\b", re.I)
_RELATIVE = re.compile(
    r"\b(today|tomorrow|yesterday|(?:next|this|on)\s+(?:" + "|".join(WEEKDAYS) + r")|"
    r"in\s+(\d+)\s+days?)\b",
    re.I,
)
_CLOCK = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*([ap])\.?m\b\.?|\b(\d{1,2}):(\d{2})\b", re.I)
_PART = r"(Y{2,4}|y{2,4}|MM|mm|DD|dd)"
_FORMAT = re.compile(
    r"(?<![A-Za-z])" + _PART + r"([-/.])" + _PART + r"(?:\2" + _PART + r")?(?![A-Za-z])"
)
_WORDY_FORMAT = re.compile(r"\b(year|month|day)-(year|month|day)-(year|month|day)\b", re.I)
_STRFTIME = re.compile(r"%[Ymd][-/.]%[Ymd](?:[-/.]%[Ymd])?")
_CODES = {"yy": "%Y", "yyy": "%Y", "yyyy": "%Y", "mm": "%m", "dd": "%d"}
_CODES |= {"year": "%Y", "month": "%m", "day": "%d"}

Found = tuple[str, Any, int, int]  # kind, value, start, end


def find_moments(prompt: str, now: datetime) -> Iterator[Found]:
    """``("date" | "datetime", (date, time | None), start, end)``, ``("month", date, ...)`` and
    ``("time", time, ...)`` for every date and time in ``prompt`` (spans may overlap; the
    caller keeps the first)."""
    yield from _iso(prompt)
    yield from _slashed(prompt)
    dated = sorted(_named(prompt, now), key=lambda f: f[2])
    yield from dated
    for m in _MONTH_YEAR.finditer(prompt):
        month = _month_number(m.group("month"))
        yield "month", date(int(m.group("year")), month, 1), m.start(), m.end()
    absolute = [f[2] for f in dated]
    for m in _RELATIVE.finditer(prompt):
        apposed = re.match(r",?\s*", prompt[m.end() :])
        if apposed and m.end() + apposed.end() in absolute:
            continue  # "tomorrow, June 1 2023": the date itself says it
        day = _relative_day(m.group(1).lower(), m.group(2), now)
        yield "date", (day, None), m.start(), m.end()
    for m in _CLOCK.finditer(prompt):
        hour = int(m.group(1) or m.group(4))
        minute = int(m.group(2) or m.group(5) or 0)
        if m.group(3):
            if not 1 <= hour <= 12:
                continue
            hour = hour % 12 + (12 if m.group(3).lower() == "p" else 0)
        if hour < 24 and minute < 60:
            yield "time", time(hour, minute), m.start(), m.end()


def _iso(prompt: str) -> Iterator[Found]:
    for m in _ISO.finditer(prompt):
        day = _safe_date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if day is not None:
            clock = _parse_clock(m.group(4)) if m.group(4) else None
            yield ("datetime" if clock else "date"), (day, clock), m.start(), m.end()


def _slashed(prompt: str) -> Iterator[Found]:
    for m in _SLASHED.finditer(prompt):
        if m.group(1):
            day = _safe_date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        else:
            first, second, year = int(m.group(4)), int(m.group(5)), int(m.group(6))
            # Month first (US style) unless the first number cannot be a month.
            month, dom = (second, first) if first > 12 else (first, second)
            day = _safe_date(year, month, dom)
        if day is not None:
            yield "date", (day, None), m.start(), m.end()


def _named(prompt: str, now: datetime) -> list[Found]:
    found: list[tuple[int, int, int | None, int, int]] = []  # month, day, year, start, end
    for pattern in (_MONTH_FIRST, _DAY_FIRST):
        for m in pattern.finditer(prompt):
            year = int(m.group("year")) if m.group("year") else None
            found.append(
                (_month_number(m.group("month")), int(m.group("day")), year, m.start(), m.end())
            )
    out: list[Found] = []
    for month, dom, year, start, end in found:
        if year is None:  # "April 3rd to April 5th 2023": the next dated mention's year
            later = [y for _, _, y, s, _ in found if y is not None and s > start]
            year = later[0] if later else now.year
        day = _safe_date(year, month, dom)
        if day is not None:
            out.append(("date", (day, None), start, end))
    return out


def _month_number(text: str) -> int:
    prefix = text.lower().rstrip(".")[:3]
    return next(i for i, m in enumerate(MONTHS, 1) if m.startswith(prefix))


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
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


def date_format(spec: Mapping[str, Any]) -> str | None:
    """The ``strftime`` pattern a parameter's description asks for (``MM-DD-YYYY``,
    ``yyyy/mm/dd``, ``month-day-year``, ``%Y-%m-%d``), or None."""
    description = str(spec.get("description") or "")
    m = _STRFTIME.search(description)
    if m:
        return m.group(0)
    m = _FORMAT.search(description)
    if m:
        parts = [p for p in (m.group(1), m.group(3), m.group(4)) if p]
        return m.group(2).join(_CODES[p.lower()] for p in parts)
    m = _WORDY_FORMAT.search(description)
    if m:
        return "-".join(_CODES[p.lower()] for p in m.groups())
    return None


def format_day(day: date, spec: Mapping[str, Any]) -> str:
    pattern = date_format(spec)
    return day.strftime(pattern) if pattern else day.isoformat()
