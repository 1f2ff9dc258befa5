"""The emulated prompt: tools shown as Python, and a conversation folded into plain messages.

:func:`render_tools` turns OpenAI function definitions into Python source that is valid on its
own: a Pydantic model for every object parameter (nested objects and ``$ref`` too, enums as
``Literal``, arrays as ``list[...]``, optional fields with their defaults) and a typed stub
``def name(arg: type, ...) -> Any:`` whose docstring carries the description and an ``Args``
section. Tool text never becomes code: names go through
:func:`~toolrun.gateway.validate.python_name`, descriptions are escaped into docstrings or
``repr``'d into ``Field(description=...)``, defaults and enum values are unparsed literals.

:func:`system_prompt` adds the instructions (answer with one ```python block of calls, or plain
text), shaped by ``tool_choice`` and ``parallel_tool_calls``; :mod:`toolrun.gateway.fold` puts
them into a conversation.
"""

from __future__ import annotations

import ast
import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from toolrun.errors import InvalidDefinition
from toolrun.gateway.validate import RESERVED, OfferedTool, OfferedTools, python_name

_HEADER = "from typing import Any, Literal\n\nfrom pydantic import BaseModel, Field\n"
_SCALARS = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}
_PLACEHOLDERS = {"string": "...", "integer": 1, "number": 1.0, "boolean": True}
_FIELD_TAKEN = frozenset(RESERVED | set(dir(BaseModel)))
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_WORDS = re.compile(r"[A-Za-z0-9]+")
_NOTES = ("format", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems")


@dataclass(frozen=True)
class ModelSpec:
    """A generated Pydantic model: its class name and its fields (Python name -> JSON name)."""

    name: str
    fields: Mapping[str, str]


@dataclass(frozen=True)
class ToolSource:
    """The rendered tools: Python source and the models it defines, by class name."""

    source: str
    models: Mapping[str, ModelSpec]


def render_tools(tools: OfferedTools | Sequence[Mapping[str, Any]]) -> ToolSource:
    """Pydantic models and typed stubs for ``tools``, as one valid Python module."""
    offered = tools if isinstance(tools, OfferedTools) else OfferedTools.from_openai(tools)
    return _render(offered)


def docstring(text: str, indent: str = "") -> str:
    """``text`` as a triple-quoted docstring literal: nothing in it can end the string; each
    line after the first is indented by ``indent`` (blank ones emptied), and a multi-line text
    closes on a line of its own."""
    body = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    body = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", body)
    if body.endswith('"'):
        body = body[:-1] + '\\"'
    if "\n" not in body:
        return f'"""{body}"""'
    first, *rest = body.split("\n")
    lines = [first, *(indent + line if line.strip(" \t") else "" for line in rest)]
    return '"""' + "\n".join(lines) + "\n" + indent + '"""'


def literal_source(value: Any) -> str:
    """A JSON value as Python literal source (``true`` -> ``True``)."""
    return ast.unparse(_literal(value))


def _literal(value: Any) -> ast.expr:
    if value is None or isinstance(value, bool | int | str):
        return ast.Constant(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("no literal for a non-finite number")
        return ast.Constant(value)
    if isinstance(value, list | tuple):
        return ast.List([_literal(v) for v in value], ast.Load())
    if isinstance(value, Mapping):
        return ast.Dict(
            [ast.Constant(str(k)) for k in value], [_literal(v) for v in value.values()]
        )
    raise ValueError(f"not a JSON value: {type(value).__name__}")


def _pascal(text: str) -> str:
    return "".join(w[0].upper() + w[1:] for w in _WORDS.findall(text)) or "Model"


@functools.lru_cache(maxsize=256)
def _render(offered: OfferedTools) -> ToolSource:
    renderer = _Renderer(offered)
    stubs = [renderer.stub(tool) for tool in offered.values()]
    parts = [_HEADER, *renderer.classes, *stubs]
    return ToolSource("\n\n".join(parts), renderer.models)


class _Renderer:
    """Walks each tool's schema once, collecting model classes in dependency order."""

    def __init__(self, offered: OfferedTools) -> None:
        self.taken = set(RESERVED) | {tool.python_name for tool in offered.values()}
        self.classes: list[str] = []
        self.models: dict[str, ModelSpec] = {}
        self._refs: dict[tuple[str, str], str] = {}
        self._building: set[tuple[str, str]] = set()

    def stub(self, tool: OfferedTool) -> str:
        root = tool.parameters
        properties = root.get("properties", {})
        required = tool.required
        params: list[str] = []
        docs: list[str] = []
        seen_optional = False
        for name, py in tool.python_params.items():
            schema = properties.get(name) or {}
            hint = _pascal(tool.python_name) + _pascal(name)
            kind = self.annotation(schema, hint, tool.name, root)
            if name not in required:
                params.append(f"{py}: {_optional(kind, schema)}")
                seen_optional = True
            else:
                if seen_optional and "*" not in params:  # required after optional: keyword-only
                    params.append("*")
                params.append(f"{py}: {kind}")
            note = _describe(schema)
            if note:
                docs.append(f"{py}: {note}")
        if tool.accepts_extra:
            params.append(f"**{python_name('kwargs', set(tool.python_params.values()))}: Any")
        signature = ", ".join(params)
        if len(signature) + len(tool.python_name) > 80:
            signature = "".join(f"\n    {p}," for p in params) + "\n"
        text = tool.description.strip()
        if docs:
            text = (text + "\n\n" if text else "") + "Args:\n" + "\n".join("    " + d for d in docs)
        body = docstring(text, "    ") if text else "..."
        return f"def {tool.python_name}({signature}) -> Any:\n    {body}\n"

    def annotation(self, schema: Any, hint: str, tool: str, root: Mapping[str, Any]) -> str:
        """The Python type of ``schema``; object schemas become model classes named ``hint``."""
        if not isinstance(schema, Mapping):
            return "Any"
        if isinstance(schema.get("$ref"), str):
            return self._ref(schema["$ref"], tool, root)
        if "enum" in schema or "const" in schema:
            values = schema["enum"] if "enum" in schema else [schema["const"]]
            if values and all(v is None or isinstance(v, str | int) for v in values):
                return "Literal[" + ", ".join(literal_source(v) for v in values) + "]"
        branches = schema.get("anyOf") or schema.get("oneOf")
        if isinstance(branches, list) and branches:
            return _union(self.annotation(b, hint, tool, root) for b in branches)
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1:
            return self.annotation(all_of[0], hint, tool, root)
        kind = schema.get("type")
        if isinstance(kind, list):
            rest = {k: v for k, v in schema.items() if k != "type"}
            return _union(self.annotation({**rest, "type": k}, hint, tool, root) for k in kind)
        if kind in _SCALARS:
            return _SCALARS[kind]
        if kind == "null":
            return "None"
        if kind == "array":
            items = schema.get("items")
            singular = hint[:-1] if hint.endswith("s") and len(hint) > 3 else hint + "Item"
            return f"list[{self.annotation(items, singular, tool, root) if items else 'Any'}]"
        if kind == "object" or (kind is None and "properties" in schema):
            return self._object(schema, hint, tool, root)
        return "Any"

    def _object(self, schema: Mapping[str, Any], hint: str, tool: str, root: Any) -> str:
        properties = schema.get("properties")
        if not isinstance(properties, Mapping) or not properties:
            extra = schema.get("additionalProperties")
            value = self.annotation(extra, hint + "Value", tool, root) if extra else "Any"
            return f"dict[str, {'Any' if value == 'None' else value}]"
        title = schema.get("title")
        name = python_name(_pascal(title) if isinstance(title, str) else hint, self.taken)
        self.taken.add(name)
        required = set(schema.get("required") or ())
        fields: dict[str, str] = {}
        lines: list[str] = []
        for prop, sub in properties.items():
            py = _field_name(prop, set(fields))
            fields[py] = prop
            kind = self.annotation(sub, name + _pascal(prop), tool, root)
            lines.append(_field(py, prop, kind, sub, prop in required))
        description = schema.get("description")
        doc = [docstring(description.strip(), "    ")] if isinstance(description, str) else []
        body = "\n".join("    " + line for line in [*doc, *lines])
        self.classes.append(f"class {name}(BaseModel):\n{body}\n")
        self.models[name] = ModelSpec(name, fields)
        return name

    def _ref(self, ref: str, tool: str, root: Mapping[str, Any]) -> str:
        key = (tool, ref)
        if key in self._refs:
            return self._refs[key]
        if key in self._building:
            return "dict[str, Any]"  # a recursive model: shown as a plain dict
        match = re.fullmatch(r"#/(\$defs|definitions)/([^/]+)", ref)
        defs = root.get(match.group(1)) if match else None
        target = defs.get(match.group(2)) if match and isinstance(defs, Mapping) else None
        if match is None or not isinstance(target, Mapping):
            return "Any"
        self._building.add(key)
        kind = self.annotation(target, _pascal(match.group(2)), tool, root)
        self._building.discard(key)
        self._refs[key] = kind
        return kind


def _field_name(prop: str, taken: set[str]) -> str:
    name = python_name(prop, taken | _FIELD_TAKEN)
    return "field_" + name if name.startswith("model_") else name


def _field(py: str, prop: str, kind: str, schema: Any, required: bool) -> str:
    default = [] if required else [_default_source(schema)]
    if not required and not _has_default(schema):
        kind = _nullable(kind)
    options: list[str] = []
    description = schema.get("description") if isinstance(schema, Mapping) else None
    if isinstance(description, str) and description.strip():
        options.append(f"description={description.strip()!r}")
    if py != prop:
        options.append(f"alias={prop!r}")
    if not options:
        return f"{py}: {kind}" + "".join(f" = {d}" for d in default)
    return f"{py}: {kind} = Field({', '.join(default + options)})"


def _has_default(schema: Any) -> bool:
    if not isinstance(schema, Mapping) or "default" not in schema:
        return False
    try:
        literal_source(schema["default"])
    except ValueError:
        return False
    return schema["default"] is not None


def _default_source(schema: Any) -> str:
    return literal_source(schema["default"]) if _has_default(schema) else "None"


def _nullable(kind: str) -> str:
    return kind if kind in ("Any", "None") or kind.endswith("| None") else f"{kind} | None"


def _optional(kind: str, schema: Any) -> str:
    if _has_default(schema):
        return f"{kind} = {_default_source(schema)}"
    return f"{_nullable(kind)} = None"


def _union(parts: Any) -> str:
    unique = list(dict.fromkeys(parts))
    if "Any" in unique:
        return "Any"
    if "None" in unique and len(unique) > 1:  # ``None`` last reads as "optional"
        unique = [p for p in unique if p != "None"] + ["None"]
    return " | ".join(unique)


def _describe(schema: Any) -> str:
    if not isinstance(schema, Mapping):
        return ""
    text = schema.get("description")
    text = " ".join(text.split()) if isinstance(text, str) else ""
    notes = [f"{k} {schema[k]}" for k in _NOTES if isinstance(schema.get(k), str | int | float)]
    if notes:
        text = f"{text} ({', '.join(notes)})" if text else ", ".join(notes)
    return text


# -- instructions -------------------------------------------------------------------------------


def select_tools(
    tools: Sequence[Mapping[str, Any]] | None, tool_choice: Any = None
) -> list[Mapping[str, Any]]:
    """The tools to offer under ``tool_choice``: none for ``"none"``, the named one only for
    ``{"type": "function", "function": {"name": ...}}``, else all of them."""
    tools = list(tools or [])
    if tool_choice == "none":
        return []
    name = forced_name(tool_choice)
    if name is None:
        return tools
    chosen = [t for t in tools if (t.get("function", t) or {}).get("name") == name]
    if not chosen:
        raise InvalidDefinition(f"tool_choice names {name!r}, which is not among the tools")
    return chosen


def system_prompt(
    tools: Sequence[Mapping[str, Any]] | None,
    *,
    tool_choice: Any = None,
    parallel_tool_calls: bool = True,
) -> str | None:
    """The instructions and tool source to add to the system message (``None``: no tools)."""
    if not tools:
        return None
    if tool_choice == "none":
        return "Do not call any functions in this reply; answer in plain text."
    offered = OfferedTools.from_openai(select_tools(tools, tool_choice))
    rendered = render_tools(offered)
    first = next(iter(offered.values()))
    example = _example(first)
    models = (
        " The Pydantic models describe their object parameters: pass a dict or Model(...)."
        if rendered.models
        else ""
    )
    forced = forced_name(tool_choice)
    if forced is not None:
        rule = f"You must call {first.python_name} in this reply."
    elif tool_choice == "required":
        rule = "You must call at least one function in this reply."
    else:
        rule = "When no function is needed, answer in plain text, without a code block."
    count = (
        "You may call several functions in the block when they do not depend on each other."
        if parallel_tool_calls
        else "Call at most one function per reply."
    )
    return (
        f"You can call the Python functions below.{models}\n\n"
        f"{_fenced(rendered.source)}\n\n"
        "To call functions, reply with one ```python code block that contains only the "
        "calls, one per line, with literal arguments (strings, numbers, True/False/None, "
        "lists, dicts), for example:\n\n"
        f"{_fenced(example)}\n\n"
        f"{count} Write no other code in the block (no imports, loops or print), and never "
        "use one call's result as another call's argument: the results come back to you in "
        f"the next message. {rule}"
    )


def _fenced(source: str) -> str:
    """A ```python block; a longer fence when ``source`` holds backticks (a description
    quoting markdown must not end the block early)."""
    runs = [len(run) for run in re.findall("`+", source)]
    fence = "`" * max([3, *(n + 1 for n in runs)])
    return f"{fence}python\n{source.rstrip()}\n{fence}"


def forced_name(tool_choice: Any) -> str | None:
    if not isinstance(tool_choice, Mapping):
        return None
    function = tool_choice.get("function", tool_choice)
    name = function.get("name") if isinstance(function, Mapping) else None
    return name if isinstance(name, str) else None


def _example(tool: OfferedTool) -> str:
    properties = tool.parameters.get("properties", {})
    names = [n for n in tool.params if n in tool.required] or list(tool.params[:1])
    args = {n: _placeholder(properties.get(n) or {}) for n in names}
    return call_source(tool.python_name, args, tool)


def _placeholder(schema: Mapping[str, Any]) -> Any:
    for key in ("examples", "enum"):
        values = schema.get(key)
        if isinstance(values, list) and values:
            return values[0]
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type")
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return _PLACEHOLDERS.get(kind if isinstance(kind, str) else "string", "...")


def call_source(name: str, arguments: Mapping[str, Any], tool: OfferedTool | None = None) -> str:
    """``name(arg=value, ...)`` as Python source; names that are not identifiers go through
    ``**{...}``. With ``tool``, its Python names are used."""
    func = tool.python_name if tool else python_name(name)
    keywords: list[ast.keyword] = []
    odd: dict[str, Any] = {}
    for key, value in arguments.items():
        py = tool.python_params.get(key) if tool else None
        if py is None and python_name(str(key)) == key:
            py = str(key)
        if py is None:
            odd[str(key)] = value
        else:
            keywords.append(ast.keyword(py, _literal(value)))
    if odd:
        keywords.append(ast.keyword(None, _literal(odd)))
    return ast.unparse(ast.Call(ast.Name(func, ast.Load()), [], keywords))
