"""The portable regex subset of ``$regex`` filters.

Python ``re``, SQLite (where toolrun registers a Python function) and PostgreSQL's ARE engine
disagree on ``$`` before a final newline, on what ``.``/``\\d``/``\\w``/``\\s``/``\\b`` and case
folding mean outside ASCII, and backtracking ``re`` can take exponential time. So patterns are
parsed here, run by a small linear-time automaton (the reference evaluator and SQLite), and
re-spelled explicitly for PostgreSQL (which runs them under ``COLLATE "C"``). See
:func:`compile_regex` for the subset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, TypeAlias, TypeVar

__all__ = ["CompiledRegex", "RegexError", "check_patterns", "compile_regex"]

MAX_PATTERN_LENGTH = 512
MAX_REGEX_STATES = 5000
MAX_REPEAT = 255  # PostgreSQL's bound for {m,n}
_MAX_GROUP_DEPTH = 32
_CACHE_LIMIT = 4096

Ranges: TypeAlias = tuple[tuple[int, int], ...]
_DIGIT: Ranges = ((48, 57),)
_WORD: Ranges = ((48, 57), (65, 90), (95, 95), (97, 122))
_SPACE: Ranges = ((9, 13), (32, 32))
_CLASSES = {"d": _DIGIT, "w": _WORD, "s": _SPACE}
_CONTROL_ESCAPES = {"n": 10, "t": 9, "r": 13, "f": 12, "v": 11}
_VERBOSE_SPACE = " \t\n\r\f\v"
_BRACES = re.compile(r"([0-9]{1,4})(,([0-9]{0,4}))?\}")
_PG_ASSERT = {"bos": r"\A", "eos": r"\Z", "bol": "^", "eol": "$", "word": r"\y", "nonword": r"\Y"}


class RegexError(ValueError):
    """A pattern outside the portable subset; the message says what and where."""


@dataclass(frozen=True)
class _Chars:
    """One character out of sorted, disjoint code point ranges (or out of their complement)."""

    ranges: Ranges
    negated: bool = False

    def has(self, ch: str) -> bool:
        c = ord(ch)
        return any(lo <= c <= hi for lo, hi in self.ranges) != self.negated


@dataclass(frozen=True)
class _Seq:
    items: tuple[_Node, ...]


@dataclass(frozen=True)
class _Alt:
    branches: tuple[_Node, ...]


@dataclass(frozen=True)
class _Repeat:
    node: _Node
    low: int
    high: int | None


@dataclass(frozen=True)
class _Assert:
    kind: Literal["bos", "eos", "bol", "eol", "word", "nonword"]


_Node: TypeAlias = _Chars | _Seq | _Alt | _Repeat | _Assert


def _normalize(ranges: list[tuple[int, int]]) -> Ranges:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return tuple(merged)


def _with_other_case(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Add the ASCII case counterparts (``i`` folds ASCII letters only, like ``re.A | re.I``)."""
    out = list(ranges)
    for lo, hi in ranges:
        for first, last, shift in ((97, 122, -32), (65, 90, 32)):
            a, b = max(lo, first), min(hi, last)
            if a <= b:
                out.append((a + shift, b + shift))
    return out


class _Parser:
    """Recursive descent over the subset: literals, escapes, classes, ``.``, ``^``, ``$``,
    ``\\b``, groups ``(..)``/``(?:..)``, ``|`` and the quantifiers ``* + ? {m} {m,} {m,n}``."""

    def __init__(self, pattern: str, options: str) -> None:
        self.src = pattern
        self.pos = 0
        self.icase = "i" in options
        self.dotall = "s" in options
        self.multiline = "m" in options
        self.verbose = "x" in options
        self.depth = 0

    def fail(self, why: str, at: int | None = None) -> RegexError:
        return RegexError(f"{why} (at offset {self.pos if at is None else at})")

    def peek(self) -> str | None:
        return self.src[self.pos] if self.pos < len(self.src) else None

    def parse(self) -> _Node:
        node = self.alternation()
        if self.pos < len(self.src):
            raise self.fail("unbalanced ')'")
        return node

    def alternation(self) -> _Node:
        branches = [self.sequence()]
        while self.peek() == "|":
            self.pos += 1
            branches.append(self.sequence())
        return branches[0] if len(branches) == 1 else _Alt(tuple(branches))

    def skip_verbose(self) -> None:
        while self.verbose and self.pos < len(self.src):
            if self.src[self.pos] in _VERBOSE_SPACE:
                self.pos += 1
            elif self.src[self.pos] == "#":
                end = self.src.find("\n", self.pos)
                self.pos = len(self.src) if end < 0 else end + 1
            else:
                break

    def sequence(self) -> _Node:
        items: list[_Node] = []
        while True:
            self.skip_verbose()
            c = self.peek()
            if c is None or c in "|)":
                return items[0] if len(items) == 1 else _Seq(tuple(items))
            start = self.pos
            atom = self.atom()
            self.skip_verbose()
            bounds = self.quantifier()
            if bounds is not None:
                if isinstance(atom, _Assert):
                    raise self.fail("an anchor cannot be repeated", start)
                atom = _Repeat(atom, *bounds)
            items.append(atom)

    def quantifier(self) -> tuple[int, int | None] | None:
        c = self.peek()
        if c is None or c not in "*+?{":
            return None
        start = self.pos
        self.pos += 1
        bounds: tuple[int, int | None] = (
            (0, None) if c == "*" else (1, None) if c == "+" else (0, 1)
        )
        if c == "{":
            m = _BRACES.match(self.src, self.pos)
            if not m:
                raise self.fail(
                    r"'{' must start a repetition like {2} or {2,5} (else write \{)", start
                )
            low = int(m[1])
            high = low if m[2] is None else int(m[3]) if m[3] else None
            if max(low, high or 0) > MAX_REPEAT:
                raise self.fail(f"repetition counts are limited to {MAX_REPEAT}", start)
            if high is not None and high < low:
                raise self.fail("repetition range {m,n} needs m <= n", start)
            self.pos = m.end()
            bounds = (low, high)
        if self.peek() == "?":  # lazy: the same strings match, so the answer is the same
            self.pos += 1
        return bounds

    def atom(self) -> _Node:
        start = self.pos
        c = self.src[start]
        self.pos += 1
        if c == "(":
            return self.group(start)
        if c == "[":
            return self.char_class(start)
        if c == ".":
            return _Chars(() if self.dotall else ((10, 10),), negated=True)
        if c == "^":
            return _Assert("bol" if self.multiline else "bos")
        if c == "$":
            return _Assert("eol" if self.multiline else "eos")
        if c in "*+?":
            raise self.fail(f"nothing to repeat before '{c}'", start)
        if c == "{":
            raise self.fail(r"nothing to repeat before '{' (write a literal '{' as \{)", start)
        if c == "\\":
            e = self.escape_letter(start)
            if e in _CLASSES:
                return _Chars(_CLASSES[e])
            if e.lower() in _CLASSES:
                return _Chars(_CLASSES[e.lower()], negated=True)
            if e in "bB":
                return _Assert("word" if e == "b" else "nonword")
            return self.chars([(cp := self.char_escape(e, start), cp)])
        return self.chars([(ord(c), ord(c))])

    def chars(self, ranges: list[tuple[int, int]], negated: bool = False) -> _Chars:
        return _Chars(_normalize(_with_other_case(ranges) if self.icase else ranges), negated)

    def group(self, start: int) -> _Node:
        if self.peek() == "?":
            if not self.src.startswith("?:", self.pos):
                raise self.fail(
                    "only '(?:' groups are supported (no lookarounds, named groups or inline "
                    "flags: they are not portable)",
                    start,
                )
            self.pos += 2
        self.depth += 1
        if self.depth > _MAX_GROUP_DEPTH:
            raise self.fail(f"groups nested more than {_MAX_GROUP_DEPTH} deep", start)
        node = self.alternation()
        self.depth -= 1
        if self.peek() != ")":
            raise self.fail("missing ')'", start)
        self.pos += 1
        return _Seq((node,)) if isinstance(node, _Assert) else node  # (^)* is allowed, ^* not

    def escape_letter(self, start: int) -> str:
        e = self.peek()
        if e is None:
            raise self.fail("trailing backslash", start)
        self.pos += 1
        return e

    def char_escape(self, e: str, start: int) -> int:
        """The code point of a one-character escape (``\\n``, ``\\x41``, ``\\u00e9``, ``\\.``)."""
        if e in _CONTROL_ESCAPES:
            return _CONTROL_ESCAPES[e]
        if e in "xu":
            n = 2 if e == "x" else 4
            digits = self.src[self.pos : self.pos + n]
            if len(digits) != n or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise self.fail(f"'\\{e}' needs {n} hex digits", start)
            self.pos += n
            return self.check(int(digits, 16), start)
        if e.isascii() and e.isalnum():
            if e.isdigit():
                raise self.fail("backreferences are not supported", start)
            raise self.fail(f"unsupported escape '\\{e}'", start)
        return self.check(ord(e), start)

    def check(self, cp: int, at: int) -> int:
        if cp == 0 or 0xD800 <= cp <= 0xDFFF:
            raise self.fail("U+0000 and surrogate code points are not allowed", at)
        return cp

    def char_class(self, start: int) -> _Chars:
        negated = self.peek() == "^"
        self.pos += negated
        ranges: list[tuple[int, int]] = []
        while self.peek() != "]" or not ranges:
            if self.peek() is None:
                raise self.fail("missing ']'", start)
            if self.peek() == "]":
                raise self.fail(r"empty class (write a literal ']' as \])", start)
            item_at = self.pos
            item = self.class_item()
            ranged = self.peek() == "-" and self.src[self.pos + 1 : self.pos + 2] not in ("]", "")
            if isinstance(item, tuple):
                if ranged:
                    raise self.fail("a class escape cannot start a range", item_at)
                ranges.extend(item)
                continue
            if ranged:
                self.pos += 1
                high = self.class_item()
                if isinstance(high, tuple):
                    raise self.fail("a class escape cannot end a range", item_at)
                if high < item:
                    raise self.fail("range out of order", item_at)
                ranges.append((item, high))
            else:
                ranges.append((item, item))
        self.pos += 1
        return self.chars(ranges, negated)

    def class_item(self) -> int | Ranges:
        start = self.pos
        c = self.src[start]
        self.pos += 1
        if c == "[":
            raise self.fail(r"write a literal '[' in a class as \[ (no POSIX classes)", start)
        if c != "\\":
            return self.check(ord(c), start)
        e = self.escape_letter(start)
        if e in _CLASSES:
            return _CLASSES[e]
        if e in "DWSbB":
            raise self.fail(f"'\\{e}' is not supported inside a class", start)
        return self.char_escape(e, start)


def _postgres(node: _Node) -> str:
    """Spell ``node`` as a PostgreSQL ARE with the same meaning (run it with ``COLLATE "C"``)."""
    if isinstance(node, _Chars):
        if node.negated and not node.ranges:
            return "."
        (lo, hi), *rest = node.ranges
        if not node.negated and not rest and lo == hi:
            return _pg_char(lo)
        body = "".join(
            _pg_char(a) if a == b else f"{_pg_char(a)}-{_pg_char(b)}" for a, b in node.ranges
        )
        return f"[{'^' if node.negated else ''}{body}]"
    if isinstance(node, _Assert):
        return _PG_ASSERT[node.kind]
    if isinstance(node, _Seq):
        if not node.items:
            return "(?:)"
        return "".join(
            f"(?:{_postgres(x)})" if isinstance(x, _Alt) else _postgres(x) for x in node.items
        )
    if isinstance(node, _Alt):
        return "|".join(_postgres(b) for b in node.branches)
    inner = _postgres(node.node)
    atom = inner if isinstance(node.node, _Chars) else f"(?:{inner})"
    low, high = node.low, node.high
    suffix = {(0, None): "*", (1, None): "+", (0, 1): "?"}.get((low, high))
    if suffix is None:
        suffix = (
            f"{{{low},}}" if high is None else f"{{{low}}}" if low == high else f"{{{low},{high}}}"
        )
    return atom + suffix


def _pg_char(cp: int) -> str:
    ch = chr(cp)
    if ch.isascii() and ch.isalnum():
        return ch
    if 0x20 <= cp < 0x7F:
        return "\\" + ch
    if not ch.isascii() and ch.isprintable():
        return ch
    return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"


_AT_EDGE, _NEWLINE, _WORD_CHAR, _OTHER = 0, 1, 2, 3


def _kind(ch: str) -> int:
    if ch == "\n":
        return _NEWLINE
    return _WORD_CHAR if (ch.isascii() and ch.isalnum()) or ch == "_" else _OTHER


def _assertion_holds(kind: str, before: int, after: int) -> bool:
    if kind == "bos":
        return before == _AT_EDGE
    if kind == "eos":
        return after == _AT_EDGE
    if kind == "bol":
        return before in (_AT_EDGE, _NEWLINE)
    if kind == "eol":
        return after in (_AT_EDGE, _NEWLINE)
    return ((before == _WORD_CHAR) != (after == _WORD_CHAR)) == (kind == "word")


_K = TypeVar("_K")
_V = TypeVar("_V")


def _bounded(cache: dict[_K, _V]) -> dict[_K, _V]:
    """``cache``, emptied first if full: memory stays bounded whatever the texts."""
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    return cache


class CompiledRegex:
    """A pattern of the portable subset. :meth:`search` simulates its Thompson NFA (time linear
    in the text, with a bounded cache of state sets); :attr:`postgres` is the PostgreSQL ARE."""

    def __init__(self, node: _Node, multiline: bool) -> None:
        self._chars: list[_Chars | None] = []
        self._next: list[int] = []
        self._eps: list[list[int]] = []
        self._check: list[str | None] = []
        self._start, self._accept = self._build(node)
        self.postgres = ("(?w)" if multiline else "") + _postgres(node)
        groups: dict[_Chars, set[int]] = {}
        for state, chars in enumerate(self._chars):
            if chars is not None:
                groups.setdefault(chars, set()).add(state)
        self._groups = {chars: frozenset(states) for chars, states in groups.items()}
        # lazily built pieces of the DFA, each cache bounded (see _bounded)
        self._reaches: dict[tuple[int, int, int], frozenset[int]] = {}
        self._closures: dict[tuple[frozenset[int], int, int], frozenset[int]] = {}
        self._accepting: dict[str, frozenset[int]] = {}
        self._steps: dict[tuple[frozenset[int], str], frozenset[int]] = {}

    def _state(self) -> int:
        if len(self._next) >= MAX_REGEX_STATES:
            raise RegexError("is too complex (too many repetitions); simplify it")
        self._chars.append(None)
        self._next.append(-1)
        self._eps.append([])
        self._check.append(None)
        return len(self._next) - 1

    def _build(self, node: _Node) -> tuple[int, int]:
        """Thompson's construction: the (entry, exit) states of a fragment matching ``node``."""
        entry = end = self._state()
        if isinstance(node, _Chars | _Assert):
            end = self._state()
            self._next[entry] = end
            if isinstance(node, _Chars):
                self._chars[entry] = node
            else:
                self._check[entry] = node.kind
        elif isinstance(node, _Seq):
            for item in node.items:
                first, last = self._build(item)
                self._eps[end].append(first)
                end = last
        elif isinstance(node, _Alt):
            end = self._state()
            for branch in node.branches:
                first, last = self._build(branch)
                self._eps[entry].append(first)
                self._eps[last].append(end)
        else:
            for _ in range(node.low):
                first, last = self._build(node.node)
                self._eps[end].append(first)
                end = last
            out = self._state()
            if node.high is None:
                first, last = self._build(node.node)
                self._eps[end] += [first, out]
                self._eps[last].append(end)
            else:
                for _ in range(node.high - node.low):
                    first, last = self._build(node.node)
                    self._eps[end] += [first, out]
                    end = last
            self._eps[end].append(out)
            end = out
        return entry, end

    def _reach(self, state: int, before: int, after: int) -> frozenset[int]:
        """The states waiting for a character (and the accept state) that ``state`` reaches by
        epsilon moves, between characters of kinds ``before`` and ``after``."""
        key = (state, before, after)
        hit = self._reaches.get(key)
        if hit is None:
            seen: set[int] = set()
            stack = [state]
            while stack:
                s = stack.pop()
                if s in seen:
                    continue
                seen.add(s)
                kind = self._check[s]
                if kind is not None and _assertion_holds(kind, before, after):
                    stack.append(self._next[s])
                stack.extend(self._eps[s])
            hit = frozenset(s for s in seen if self._chars[s] is not None or s == self._accept)
            _bounded(self._reaches)[key] = hit
        return hit

    def _closure(self, states: frozenset[int], before: int, after: int) -> frozenset[int]:
        """Everything reachable from ``states`` and from the start (the search is unanchored)."""
        key = (states, before, after)
        hit = self._closures.get(key)
        if hit is None:
            hit = self._reach(self._start, before, after).union(
                *(self._reach(s, before, after) for s in states)
            )
            _bounded(self._closures)[key] = hit
        return hit

    def _step(self, states: frozenset[int], ch: str) -> frozenset[int]:
        key = (states, ch)
        hit = self._steps.get(key)
        if hit is None:
            accepting = self._accepting.get(ch)
            if accepting is None:
                accepting = frozenset().union(
                    *(group for chars, group in self._groups.items() if chars.has(ch))
                )
                _bounded(self._accepting)[ch] = accepting
            hit = frozenset(map(self._next.__getitem__, states & accepting))
            _bounded(self._steps)[key] = hit
        return hit

    def search(self, text: str) -> bool:
        """Does the pattern match anywhere in ``text``?"""
        current: frozenset[int] = frozenset()
        before = _AT_EDGE
        for ch in text:
            after = _kind(ch)
            live = self._closure(current, before, after)
            if self._accept in live:
                return True
            current = self._step(live, ch)
            before = after
        return self._accept in self._closure(current, before, _AT_EDGE)


@lru_cache(maxsize=512)
def compile_regex(pattern: str, options: str = "") -> CompiledRegex:
    """Parse a pattern of the portable subset, or raise :class:`RegexError`.

    The subset: literal characters; escapes ``\\n \\t \\r \\f \\v \\xHH \\uHHHH`` and ``\\`` before
    any non-alphanumeric character; ``.``; classes ``[a-z_]``/``[^...]``; ``\\d \\w \\s`` and their
    negations (ASCII only: ``[0-9]``, ``[A-Za-z0-9_]``, ``[ \\t\\n\\r\\f\\v]``; only the positive
    ones inside a class); ``\\b \\B`` (ASCII word characters); ``^ $``; groups ``(...)`` and
    ``(?:...)`` (capturing is irrelevant: there are no backreferences); ``|``; ``* + ? {m} {m,}
    {m,n}`` (m, n <= 255; a lazy ``?`` suffix is accepted and changes nothing). Rejected:
    lookarounds, backreferences, named groups, inline flags, ``\\A \\Z \\p{..}``, POSIX classes,
    an unescaped ``{`` that is not a repetition.

    Options: ``i`` ASCII case-insensitive; ``m`` ``^``/``$`` also match after/before ``\\n``;
    ``s`` ``.`` also matches ``\\n`` (else ``.`` is anything but ``\\n``); ``x`` whitespace and
    ``#`` comments outside classes are ignored. Without ``m``, ``$`` matches only at the very end
    (not before a final newline, unlike Python's ``re``).
    """
    if set(options) - set("imsx"):
        raise RegexError(f"options must be letters from 'imsx', got {options!r}")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise RegexError(f"is longer than {MAX_PATTERN_LENGTH} characters")
    return CompiledRegex(_Parser(pattern, options).parse(), "m" in options)


def check_patterns(node: Any, where: str = "") -> None:
    """Raise ValueError naming the first ``pattern``/``patternProperties`` regex outside the
    portable, linear-time subset (lookarounds, backreferences, ...)."""
    if isinstance(node, dict):
        patterns = []
        if isinstance(node.get("pattern"), str):
            patterns.append(node["pattern"])
        if isinstance(node.get("patternProperties"), dict):
            patterns.extend(node["patternProperties"])
        for pattern in patterns:
            try:
                compile_regex(pattern)
            except RegexError as exc:
                raise ValueError(
                    f"pattern {pattern!r} at {where or '(root)'} {exc}; "
                    "toolrun runs schema patterns in a linear-time subset (no lookarounds or "
                    "backreferences)"
                ) from None
        for key, value in node.items():
            check_patterns(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            check_patterns(value, f"{where}/{index}")
