"""The tools offered to a model, under Python names, and the checking of each call it makes.

:class:`OfferedTools` holds an OpenAI ``tools[]`` list as the emulated prompt shows it: every
function and parameter name as a Python identifier (:func:`python_name`: ``web-search`` ->
``web_search``, ``from`` -> ``from_``) and the parameters in the schema's property order, which
is the order positional arguments bind in. :meth:`OfferedTools.check` turns one parsed call
into the JSON arguments of an OpenAI tool call:

- positional arguments are named by the schema's property order; keywords may use the Python
  name or the JSON name;
- an explicit ``None`` for an optional parameter whose schema does not accept null is dropped
  (the stubs show optional parameters as ``x: T | None = None``);
- a name the schema does not list is rejected (a Python signature would reject it too) unless
  the schema sets ``additionalProperties`` or is a free-form object without properties;
- the result is validated against the tool's JSON Schema with toolrun's validator.

A call of a tool that was not offered raises :class:`UnknownTool`; bad arguments raise
:class:`~toolrun.errors.ArgumentsInvalid` with every violation listed.
"""

from __future__ import annotations

import functools
import json
import keyword
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from toolrun.errors import ArgumentsInvalid, InvalidDefinition
from toolrun.gateway.errors import UnknownTool
from toolrun.registry.schema import ArgumentsValidator, compile_validator, validate_arguments

_NOT_IDENTIFIER = re.compile(r"[^0-9A-Za-z_]")
_NO_PARAMETERS: Mapping[str, Any] = {
    "type": "object",
    "properties": {},
    "additionalProperties": False,
}
# Names the generated source needs for itself (and Python's own): a tool may not take them.
RESERVED = frozenset(
    {"Any", "Literal", "BaseModel", "Field", "print", "str", "int", "float", "bool", "list"}
    | {"dict", "true", "false", "null"}
)


def python_name(name: str, taken: frozenset[str] | set[str] = frozenset()) -> str:
    """``name`` as a Python identifier not in ``taken``: other characters become ``_``, leading
    underscores go, a leading digit gets ``x`` before it, a keyword or a taken name gets ``_``
    after it."""
    ident = _NOT_IDENTIFIER.sub("_", name).lstrip("_") or "x"
    if ident[0].isdigit():
        ident = "x" + ident
    if keyword.iskeyword(ident):
        ident += "_"
    while ident in taken:
        ident += "_"
    return ident


@dataclass(frozen=True)
class OfferedTool:
    """One function of an OpenAI ``tools[]`` list, as Python sees it."""

    name: str
    python_name: str
    description: str
    parameters: Mapping[str, Any]
    python_params: Mapping[str, str] = field(repr=False)  # JSON name -> Python name
    params: tuple[str, ...] = field(init=False, repr=False)  # JSON names, schema order
    json_params: Mapping[str, str] = field(init=False, repr=False)  # Python name -> JSON name

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.python_params))
        inverse = {py: js for js, py in self.python_params.items()}
        object.__setattr__(self, "json_params", inverse)

    @property
    def required(self) -> frozenset[str]:
        return frozenset(self.parameters.get("required") or ())

    @property
    def accepts_extra(self) -> bool:
        """Names beyond the listed properties are accepted: ``additionalProperties`` says
        so, or the schema lists no properties and does not forbid them (a free-form object)."""
        extra = self.parameters.get("additionalProperties")
        return bool(extra) or (extra is None and not self.params)

    @functools.cached_property
    def validator(self) -> jsonschema.Draft202012Validator:
        return compile_validator(self.parameters)


class OfferedTools(Mapping[str, OfferedTool]):
    """The offered functions by their original name; :meth:`lookup` also takes Python names."""

    def __init__(self, tools: Sequence[OfferedTool] = ()) -> None:
        self._tools = {tool.name: tool for tool in tools}
        self._python = {tool.python_name: tool for tool in tools}

    @classmethod
    def from_openai(cls, tools: Sequence[Mapping[str, Any]] | None) -> OfferedTools:
        """From ``tools[]`` entries (``{"type": "function", "function": {...}}``) or bare
        function definitions; a malformed entry raises :class:`InvalidDefinition`."""
        if not tools:
            return cls()
        try:
            key = json.dumps(tools)  # not sorted: the property order binds positional arguments
        except (TypeError, ValueError) as exc:
            raise InvalidDefinition(f"tools are not JSON: {exc}") from exc
        return _from_json(key)

    def __getitem__(self, name: str) -> OfferedTool:
        return self._tools[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    def lookup(self, name: str) -> OfferedTool | None:
        """The tool called ``name`` in Python or in the original definition."""
        return self._python.get(name) or self._tools.get(name)

    def describe(self) -> str:
        """The offered names for an error message."""
        return ", ".join(tool.python_name for tool in self.values()) or "(none)"

    def check(
        self,
        name: str,
        positional: Sequence[Any] = (),
        keywords: Mapping[str, Any] | None = None,
        *,
        json_names: bool = False,
    ) -> tuple[str, dict[str, Any]]:
        """The original tool name and the validated JSON arguments of one call. ``keywords``
        use Python names (JSON names also accepted) or, with ``json_names``, JSON names only."""
        tool = self.lookup(name)
        if tool is None:
            raise UnknownTool(f"unknown tool {name!r}; the offered tools are {self.describe()}")
        arguments = _bind(tool, positional, keywords or {}, json_names)
        validate_arguments(
            tool.parameters, arguments, validator=tool.validator, subject=tool.python_name
        )
        return tool.name, arguments


def _bind(
    tool: OfferedTool, positional: Sequence[Any], keywords: Mapping[str, Any], json_names: bool
) -> dict[str, Any]:
    if len(positional) > len(tool.params):
        raise ArgumentsInvalid(
            f"{tool.python_name}() takes {len(tool.params)} positional argument(s) "
            f"({', '.join(tool.python_params.values()) or 'none'}), got {len(positional)}"
        )
    arguments = dict(zip(tool.params, positional, strict=False))
    for key, value in keywords.items():
        name = key if json_names else tool.json_params.get(key, key)
        if name in arguments:
            raise ArgumentsInvalid(f"{tool.python_name}() got two values for {name!r}")
        if name not in tool.python_params and not tool.accepts_extra:
            expected = ", ".join(tool.python_params.values()) or "none"
            raise ArgumentsInvalid(
                f"{tool.python_name}() has no parameter {key!r}; its parameters are {expected}"
            )
        arguments[name] = value
    for name in [k for k, v in arguments.items() if v is None and k not in tool.required]:
        if not _accepts_null(tool.parameters.get("properties", {}).get(name, {})):
            del arguments[name]
    return arguments


def _accepts_null(schema: Any) -> bool:
    if not isinstance(schema, Mapping) or not schema:
        return True
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    if None in (schema.get("enum") or ()):
        return True
    branches = schema.get("anyOf") or schema.get("oneOf") or ()
    return any(_accepts_null(b) for b in branches if isinstance(b, Mapping))


@functools.lru_cache(maxsize=256)
def _from_json(key: str) -> OfferedTools:
    entries = json.loads(key)
    if not isinstance(entries, list):
        raise InvalidDefinition("tools must be a list of function definitions")
    tools: list[OfferedTool] = []
    taken: set[str] = set(RESERVED)
    for index, entry in enumerate(entries):
        tool = _offered(entry, index, taken)
        if any(t.name == tool.name for t in tools):
            raise InvalidDefinition(f"tools[{index}]: the function name {tool.name!r} repeats")
        taken.add(tool.python_name)
        tools.append(tool)
    return OfferedTools(tools)


def _offered(entry: Any, index: int, taken: set[str]) -> OfferedTool:
    where = f"tools[{index}]"
    if isinstance(entry, Mapping) and entry.get("type", "function") != "function":
        raise InvalidDefinition(f"{where}: only function tools can be emulated")
    function = entry.get("function", entry) if isinstance(entry, Mapping) else None
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise InvalidDefinition(f"{where}: a function definition with a name is required")
    name = function["name"]
    if not name.strip():
        raise InvalidDefinition(f"{where}: the function name is empty")
    parameters = function.get("parameters") or _NO_PARAMETERS
    if not isinstance(parameters, Mapping) or not isinstance(
        parameters.get("properties", {}), Mapping
    ):
        raise InvalidDefinition(f"{where} ({name}): parameters must be a JSON Schema object")
    try:
        ArgumentsValidator.check_schema(parameters)
    except jsonschema.SchemaError as exc:
        raise InvalidDefinition(
            f"{where} ({name}): invalid parameters schema: {exc.message}"
        ) from exc
    python_params: dict[str, str] = {}
    for prop in parameters.get("properties", {}):
        python_params[prop] = python_name(prop, set(python_params.values()))
    description = function.get("description")
    return OfferedTool(
        name=name,
        python_name=python_name(name, taken),
        description=description if isinstance(description, str) else "",
        parameters=parameters,
        python_params=python_params,
    )
