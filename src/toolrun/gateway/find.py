"""Where the code is in a model's reply: reasoning blocks set apart, then tool tags, fences
and bare call lines found (steps 1 and 2 of :mod:`toolrun.gateway.parse`).

Nothing here reads a call: :func:`split_reasoning` returns the visible text and the reasoning,
:func:`find_segments` the pieces of that text that may be code (:class:`Segment`, each with its
line number in the reply, so errors can point at it). Offsets and line numbers of the visible
text are those of the reply: removed spans are blanked, never cut.
"""

from __future__ import annotations

import ast
import bisect
import builtins
import functools
import json
import re
import textwrap
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from toolrun.gateway.validate import OfferedTools

BUILTINS = frozenset(dir(builtins))
NAMESPACES = frozenset({"functions", "tools", "tool", "default_api", "api"})

SPECIAL = re.compile(r"<\|(?:im_end|eot_id|eom_id|end|endoftext)\|>|</s>|<\|im_start\|>assistant")
_THINK_OPEN = re.compile(r"<(think|thinking|reasoning)>", re.I)
_THINK_CLOSE = re.compile(r"</(think|thinking|reasoning)>", re.I)
_CLOSERS = {tag: re.compile(f"</{tag}>", re.I) for tag in ("think", "thinking", "reasoning")}
_TAG = re.compile(
    r"<(tool_call|tool_calls|function_call|tool_code|code)>(.*?)(?:</\1>|(?=<\1>)|\Z)"
    r"|<function=([\w.-]+)>(.*?)(?:</function>|\Z)"
    r"|<\|(?:python_tag|tool_call)\|>(.*)"
    r"|\[TOOL_CALLS\]((?:\s*[\w.-]+\[ARGS\])?)(.*)"
    r"|\bfunctools(?=\[)(.*)"
    r"|✿FUNCTION✿:[ \t]*([\w.-]+)\s*✿ARGS✿:(.*?)(?=✿|\Z)"
    r"|^[ \t]*Action:[ \t]*([\w.-]+)[ \t]*\n[ \t]*Action Input:(.*?)(?=\n[ \t]*\w+:|\Z)",
    re.S | re.M,
)
_NOT_NEWLINE = re.compile(r"[^\n]")
_ARGS_MARK = re.compile(r"\s*([\w.-]+)\[ARGS\]")
_FENCE = re.compile(r"^[ \t]*(?:\w[\w ]{0,30}:[ \t]*)?(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^`\n]*$")
_ONE_LINE_FENCE = re.compile(r"^[ \t]*```[ \t]*(?:(python|py|json)\s+)?([^`\n]+?)[ \t]*```[ \t]*$")
_LABEL = re.compile(
    r"^[ \t]*(?:(?:(?:function |tool )?call(?:ing)?|action|function|tool)[ \t]*:|>>>)[ \t]*(?=\S)",
    re.I,
)
_PROMPT = re.compile(r"^[ \t]*(?:>>>|\.\.\.)(?: |$)")
_INLINE = re.compile(r"^[ \t]*`([^`\n]+)`[ \t]*[.:]?[ \t]*$")
_PLAIN_CALL = re.compile(r"^[ \t]*(?:(?:functions|tools|default_api)\.)?([A-Za-z_]\w*)[ \t]*\(")
_ASSIGN = re.compile(r"^[ \t]*[A-Za-z_]\w*[ \t]*=[ \t]*[-\[{(\"'0-9tfnTFN]")
_JSON_START = re.compile(r"^[ \t]*(?:\{|\[[ \t]*(?:\{|$))")  # {..., [{..., or a lone [


def _blank(text: str) -> str:
    """As many newlines as ``text`` has: removing it keeps the reply's line numbers."""
    return "\n" * text.count("\n")


def split_reasoning(text: str) -> tuple[str, str | None]:
    """``(visible text, reasoning)``; line numbers of the visible text are kept.
    One pass: a reply full of unclosed tags costs no more than a short one."""
    thoughts: list[str] = []
    close, opening = _THINK_CLOSE.search(text), _THINK_OPEN.search(text)
    if close and (opening is None or close.start() < opening.start()):
        thoughts.append(text[: close.start()])
        text = _blank(text[: close.end()]) + text[close.end() :]
    pieces: list[str] = []
    position = 0
    while opening := _THINK_OPEN.search(text, position):
        pieces.append(text[position : opening.start()])
        close = _CLOSERS[opening.group(1).lower()].search(text, opening.end())
        if close is None:
            thoughts.append(text[opening.end() :])
            position = len(text)
            break
        thoughts.append(text[opening.end() : close.start()])
        pieces.append(_blank(text[opening.start() : close.end()]))
        position = close.end()
    pieces.append(text[position:])
    reasoning = "\n\n".join(t.strip() for t in thoughts if t.strip())
    return "".join(pieces), reasoning or None


def first_line(text: str) -> int:
    stripped = text.lstrip()
    return text[: len(text) - len(stripped)].count("\n") + 1


@dataclass(frozen=True, slots=True)
class Segment:
    start: int  # offsets in the visible text, cut from the content when the code holds calls
    end: int
    code: str
    line: int  # the reply's line number of the code's first line
    intent: bool = True  # surely meant as calls (a tool tag or a bare call line)
    name: str | None = None  # ``<function=name>{json}``: the tool named outside the code
    lang: str = ""


@dataclass(frozen=True)
class Patterns:
    call_start: re.Pattern[str]  # a line that begins with a call of an offered tool
    mention: re.Pattern[str]  # an offered tool called (not defined) or named in quotes

    def mentioned(self, code: str) -> bool:
        return self.mention.search(code) is not None


@functools.lru_cache(maxsize=256)
def patterns_for(offered: OfferedTools) -> Patterns:
    names = {tool.python_name for tool in offered.values()} | {
        name for name in offered if name.isidentifier()
    }
    alternation = "|".join(sorted(map(re.escape, names), key=len, reverse=True))
    namespace = "(?:(?:" + "|".join(sorted(NAMESPACES)) + r")\.)?"
    call = rf"{namespace}(?:{alternation})[ \t]*\("
    target = r"(?:[A-Za-z_]\w*[ \t]*(?::[^=\n]*)?=[ \t]*)?"  # result = ..., x: T = ...
    start = rf"^[ \t]*{target}(?:await[ \t]+)?(?:print[ \t]*\([ \t]*)?(?:\[[ \t]*)?{call}"
    quoted = "|".join(map(re.escape, sorted(set(offered) | names)))
    mention = rf"(?<!def )(?<![\w.]){call}|[\"'](?:{quoted})[\"']"
    return Patterns(re.compile(start), re.compile(mention))


class _LineIndex:
    """Line numbers of offsets in one text, without recounting from the start each time."""

    def __init__(self, text: str) -> None:
        self._newlines = [m.start() for m in re.finditer("\n", text)]

    def __call__(self, offset: int) -> int:
        return bisect.bisect_left(self._newlines, offset) + 1


def _mask(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """``text`` with the spans blanked out (newlines kept), in one pass."""
    pieces, position = [], 0
    for start, end in spans:
        pieces += [text[position:start], _NOT_NEWLINE.sub(" ", text[start:end])]
        position = end
    return "".join(pieces) + text[position:]


def find_segments(text: str, patterns: Patterns) -> list[Segment]:
    tags = list(_tag_segments(text))
    masked = _mask(text, [(s.start, s.end) for s in tags])
    fences = list(_fence_segments(masked))
    masked = _mask(masked, [(s.start, s.end) for s in fences])
    bare = list(_bare_segments(masked, patterns))
    return sorted(tags + fences + bare, key=lambda s: s.start)


def _tag_segments(text: str) -> Iterator[Segment]:
    line_of = _LineIndex(text)
    for match in _TAG.finditer(text):
        start, end = match.span()
        if match.group(1) is not None:  # <tool_call>...</tool_call>
            index = 2
            intent = match.group(1).lower() != "code"
        elif match.group(3) is not None:  # <function=name>{...}</function>
            body = match.group(4)
            yield Segment(start, end, body, line_of(match.start(4)), name=match.group(3))
            continue
        elif match.group(5) is not None:  # <|python_tag|>...
            index, intent = 5, True
        elif match.group(7) is not None:  # [TOOL_CALLS] ...
            if match.group(6):
                yield from _mistral_segments(text, line_of, start, match.start(6), end)
                continue
            index, intent = 7, True
        elif match.group(8) is not None:  # functools[...]
            index, intent = 8, True
        else:  # ✿FUNCTION✿: name ✿ARGS✿: {...} (Qwen-Agent); Action: / Action Input: (ReAct)
            index = 10 if match.group(9) is not None else 12
            body, name = match.group(index), match.group(index - 1)
            yield Segment(start, end, body, line_of(match.start(index)), name=name)
            continue
        body = _unfence(match.group(index))
        yield Segment(start, end, body, line_of(match.start(index)), intent=intent)


def _mistral_segments(
    text: str, line_of: _LineIndex, start: int, first: int, end: int
) -> Iterator[Segment]:
    """``[TOOL_CALLS]name[ARGS]{...}`` (repeated): one segment per call."""
    marks = list(_ARGS_MARK.finditer(text, first, end))
    for i, mark in enumerate(marks):
        stop = marks[i + 1].start() if i + 1 < len(marks) else end
        body = text[mark.end() : stop].replace("[TOOL_CALLS]", "")
        seg_start = start if i == 0 else mark.start()
        yield Segment(seg_start, stop, body, line_of(mark.end()), name=mark.group(1))


def _unfence(code: str) -> str:
    stripped = code.strip()
    if stripped.startswith("```") and stripped.endswith("```") and "\n" in stripped:
        return stripped.split("\n", 1)[1].rsplit("```", 1)[0]
    return code


def _fence_segments(text: str) -> Iterator[Segment]:
    lines = text.split("\n")
    offsets = _offsets(lines)
    i = 0
    while i < len(lines):
        one = _ONE_LINE_FENCE.match(lines[i])
        opening = None if one else _FENCE.match(lines[i])
        if one:
            end = offsets[i] + len(lines[i])
            yield Segment(offsets[i], end, one.group(2), i + 1, False, lang=one.group(1) or "")
        elif opening:
            marker, lang = opening.group(1), opening.group(2).lower()
            close = next((j for j in range(i + 1, len(lines)) if _closes(lines[j], marker)), None)
            last = len(lines) - 1 if close is None else close
            body = _unprompt(lines[i + 1 : last + (close is None)])
            end = offsets[last] + len(lines[last])
            if close is None:
                lang = "unterminated:" + lang
            yield Segment(offsets[i], end, body, i + 2, False, lang=lang)
            i = last
        i += 1


def _unprompt(lines: list[str]) -> str:
    """Block lines as code, without the ``>>>``/``...`` prompts of a console transcript."""
    first = next((line for line in lines if line.strip()), "")
    if first.lstrip().startswith(">>>"):
        lines = [_PROMPT.sub("", line) for line in lines]
    return "\n".join(lines)


def _closes(line: str, marker: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(marker) and not stripped.strip(marker[0])


def _offsets(lines: list[str]) -> list[int]:
    offsets, position = [], 0
    for line in lines:
        offsets.append(position)
        position += len(line) + 1
    return offsets


def _bare_segments(text: str, patterns: Patterns) -> Iterator[Segment]:
    """Runs of code lines outside fences and tags: a run holds call-start lines or JSON
    objects, with literal assignments leading in; blank lines may separate its statements,
    a line of prose ends it."""
    lines = text.split("\n")
    offsets = _offsets(lines)
    runs: list[list[tuple[int, int, str]]] = [[]]  # (first line, last line, kind)
    i = 0
    while i < len(lines):
        kind = _line_kind(_code_line(lines[i], patterns), patterns)
        if kind:
            last = _statement_end(lines, i)
            runs[-1].append((i, last, kind))
            i = last + 1
            continue
        if lines[i].strip() and runs[-1]:
            runs.append([])
        i += 1
    for run in runs:
        while run and run[-1][2] == "assign":
            run.pop()
        if run:
            yield _bare_segment(lines, offsets, run, patterns)


def _bare_segment(
    lines: list[str], offsets: list[int], run: list[tuple[int, int, str]], patterns: Patterns
) -> Segment:
    first, last = run[0][0], run[-1][1]
    code = "\n".join(_code_line(line, patterns) for line in lines[first : last + 1])
    intent = any(kind == "call" for _, _, kind in run)
    return Segment(offsets[first], offsets[last] + len(lines[last]), code, first + 1, intent)


def _code_line(line: str, patterns: Patterns) -> str:
    """A call line without what models put around it: one inline-code span, a label such
    as ``Action:`` or ``Function call:``, a ``>>>`` prompt."""
    label = _LABEL.match(line)
    if label and patterns.call_start.match(line[label.end() :]):
        line = line[label.end() :]
    match = _INLINE.match(line)
    if match and (patterns.call_start.match(match.group(1)) or _JSON_START.match(match.group(1))):
        return match.group(1)
    return line


def _line_kind(line: str, patterns: Patterns) -> str:
    if patterns.call_start.match(line) or _foreign_call(line):
        return "call"
    if _JSON_START.match(line):
        return "json"
    return "assign" if _ASSIGN.match(line) else ""


def _foreign_call(line: str) -> bool:
    """A line that is nothing but one call of a name that is no Python builtin: a call of a
    tool that was not offered (an error later), not prose."""
    match = _PLAIN_CALL.match(line)
    if match is None or match.group(1) in BUILTINS:
        return False
    try:
        body = parse_code(line.strip()).body
    except SyntaxError:
        return False
    return len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Call)


def _statement_end(lines: list[str], first: int) -> int:
    """The last line of the statement that starts at ``first`` (brackets and strings
    balanced); the last line of the text when it never ends."""
    depth, quote = 0, ""
    for index in range(first, len(lines)):
        line, j = lines[index], 0
        while j < len(line):
            char = line[j]
            if quote:
                if char == "\\":
                    j += 1
                elif line.startswith(quote, j):
                    j += len(quote) - 1
                    quote = ""
            elif char in "\"'":
                quote = char * 3 if line.startswith(char * 3, j) else char
                j += len(quote) - 1
            elif char == "#":
                break
            elif char in "([{":
                depth += 1
            elif char in ")]}":
                depth -= 1
            j += 1
        if len(quote) == 1:  # a one-quote string never spans lines
            quote = ""
        if depth <= 0 and not quote and not line.rstrip().endswith("\\"):
            return index
    return len(lines) - 1


def parse_code(code: str) -> ast.Module:
    """``code`` parsed; every way it can fail is a :class:`SyntaxError`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes warn; the value is still read
            return ast.parse(textwrap.dedent(code))
    except (ValueError, RecursionError, MemoryError) as error:  # NUL bytes, deep nesting
        raise SyntaxError(str(error) or type(error).__name__) from None


NOT_JSON = object()


def as_json(code: str) -> Any:
    """``code`` as JSON when it is a JSON object or array, else ``NOT_JSON``."""
    stripped = code.strip()
    if not stripped.startswith(("{", "[")):
        return NOT_JSON
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        return NOT_JSON
