"""Fluent builders for function definitions (seed 001's ``FunctionDefinition`` and ``Parameter``).

The schemas they produce have the same shape as the ones :mod:`.schema` derives from type
hints (``Optional`` as ``anyOf [..., null]``, ``Literal`` as ``enum`` with a ``type``), so
a hand-written definition and a decorated function describe the same call identically::

    FunctionDefinition("orderProduct", "Order a product.").add_parameter(
        Parameter.string("productName").description("What to order").required()
    )
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Self, overload

from toolrun.errors import InvalidDefinition
from toolrun.registry.decorators import policy
from toolrun.registry.formats import check_openai_name
from toolrun.registry.runtimes import Runtime
from toolrun.registry.tool import Tool, build_tool

_UNSET: Any = object()


def _enum_type(values: Sequence[Any]) -> str | None:
    if all(isinstance(v, str) for v in values):
        return "string"
    if all(isinstance(v, bool) for v in values):
        return "boolean"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "integer"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "number"
    return None


class _EnumAccess:
    """``Parameter.enum(name)`` makes an enum parameter; ``param.enum([...])`` sets its values."""

    @overload
    def __get__(self, obj: None, owner: type[Parameter]) -> Callable[[str | None], Parameter]: ...

    @overload
    def __get__(
        self, obj: Parameter, owner: type[Parameter]
    ) -> Callable[[Iterable[Any]], Parameter]: ...

    def __get__(self, obj: Parameter | None, owner: type[Parameter]) -> Callable[..., Parameter]:
        if obj is None:
            return lambda name=None: owner(name, None)
        return obj.set_enum


class Parameter:
    """One parameter (or array item / object property) of a function definition."""

    enum = _EnumAccess()

    def __init__(self, name: str | None, json_type: str | None) -> None:
        self.name = name
        self._type = json_type
        self._description: str | None = None
        self._required = False
        self._default: Any = _UNSET
        self._nullable = False
        self._enum: list[Any] | None = None
        self._items: Parameter | None = None
        self._properties: dict[str, Parameter] = {}
        self._additional: bool | Parameter | None = None

    @classmethod
    def string(cls, name: str | None = None) -> Parameter:
        return cls(name, "string")

    @classmethod
    def number(cls, name: str | None = None) -> Parameter:
        return cls(name, "number")

    @classmethod
    def integer(cls, name: str | None = None) -> Parameter:
        return cls(name, "integer")

    @classmethod
    def boolean(cls, name: str | None = None) -> Parameter:
        return cls(name, "boolean")

    @classmethod
    def array(cls, name: str | None = None) -> Parameter:
        return cls(name, "array")

    @classmethod
    def object(cls, name: str | None = None) -> Parameter:
        return cls(name, "object")

    @property
    def is_required(self) -> bool:
        return self._required

    def description(self, text: str) -> Self:
        self._description = text
        return self

    def required(self, flag: bool = True) -> Self:
        self._required = flag
        return self

    def default(self, value: Any) -> Self:
        self._default = copy.deepcopy(value)
        return self

    def nullable(self, flag: bool = True) -> Self:
        self._nullable = flag
        return self

    def set_enum(self, values: Iterable[Any]) -> Self:
        self._enum = list(values)
        if not self._enum:
            raise InvalidDefinition(f"parameter {self.name!r}: enum needs at least one value")
        return self

    def items(self, item: Parameter) -> Self:
        if self._type != "array":
            raise InvalidDefinition(f"parameter {self.name!r}: items() needs an array parameter")
        self._items = item
        return self

    def add_property(self, prop: Parameter) -> Self:
        if self._type != "object":
            raise InvalidDefinition(
                f"parameter {self.name!r}: add_property() needs an object parameter"
            )
        _add_named(self._properties, prop, f"object {self.name!r}")
        return self

    def additional_properties(self, allowed: bool | Parameter) -> Self:
        """``False`` forbids unknown keys; a Parameter types the values of a map."""
        if self._type != "object":
            raise InvalidDefinition(f"parameter {self.name!r}: needs an object parameter")
        self._additional = allowed
        return self

    def to_schema(self) -> dict[str, Any]:
        core: dict[str, Any] = {}
        json_type = self._type
        if self._enum is not None:
            json_type = json_type or _enum_type(self._enum)
            core["enum"] = list(self._enum)
        elif json_type is None:
            raise InvalidDefinition(
                f"enum parameter {self.name!r} has no values: call .enum([...])"
            )
        if json_type:
            core["type"] = json_type
        if self._items is not None:
            core["items"] = self._items.to_schema()
        if self._type == "object" and (self._properties or self._additional is None):
            core.update(_object_schema(self._properties))
        if isinstance(self._additional, Parameter):
            core["additionalProperties"] = self._additional.to_schema()
        elif self._additional is not None:
            core["additionalProperties"] = self._additional
        schema: dict[str, Any] = {"anyOf": [core, {"type": "null"}]} if self._nullable else core
        if self._description:
            schema["description"] = self._description
        if self._default is not _UNSET:
            schema["default"] = copy.deepcopy(self._default)
        return schema


def _add_named(target: dict[str, Parameter], param: Parameter, where: str) -> None:
    if not param.name:
        raise InvalidDefinition(f"a property of {where} needs a name")
    if param.name in target:
        raise InvalidDefinition(f"{where} already has a parameter {param.name!r}")
    target[param.name] = param


def _object_schema(properties: Mapping[str, Parameter]) -> dict[str, Any]:
    out: dict[str, Any] = {"properties": {n: p.to_schema() for n, p in properties.items()}}
    required = [n for n, p in properties.items() if p.is_required]
    if required:
        out["required"] = required
    return out


class FunctionDefinition:
    """A function's name, description and parameters (seed 001's ``FunctionDefinition``).

    ``additional_properties=False`` (the default, like derived schemas) rejects unknown
    arguments.
    """

    def __init__(self, name: str, description: str = "", *, additional_properties: bool = False):
        self.name = check_openai_name(name)
        self.description = description
        self.additional_properties = additional_properties
        self._parameters: dict[str, Parameter] = {}

    @property
    def parameters(self) -> list[Parameter]:
        return list(self._parameters.values())

    def add_parameter(self, param: Parameter) -> Self:
        _add_named(self._parameters, param, f"function {self.name!r}")
        return self

    def parameters_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object", **_object_schema(self._parameters)}
        if not self.additional_properties:
            schema["additionalProperties"] = False
        return schema

    def create_function_description(self) -> dict[str, Any]:
        """The OpenAI ``tools[]`` entry."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters_schema(),
            },
        }

    def to_tool(
        self,
        *,
        version: str | None = None,
        namespace: str | None = None,
        tags: Iterable[str] = (),
        default_params: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        runtime: Runtime | None = None,
        output_schema: dict[str, Any] | None = None,
        timeout_s: float | None = None,
        trusted: bool = False,
    ) -> Tool:
        fields = {
            "name": self.name,
            "version": version,
            "namespace": namespace,
            "description": self.description,
            "tags": list(tags),
            "input_schema": self.parameters_schema(),
            "output_schema": output_schema,
            "default_params": dict(default_params or {}),
            "metadata": dict(metadata or {}),
            "runtime": runtime,
            "policy": policy(timeout_s, trusted),
        }
        return build_tool(fields, what=f"function definition {self.name!r}")
