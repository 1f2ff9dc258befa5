"""FunctionDefinition/Parameter builders and the @tool decorator."""

from __future__ import annotations

from typing import Literal

import jsonschema
import pytest

from toolrun.errors import InvalidDefinition
from toolrun.registry.builders import FunctionDefinition, Parameter
from toolrun.registry.decorators import get_tool, import_path, tool, tool_from_callable
from toolrun.registry.runtimes import HttpRuntime, PythonRuntime


def test_seed_example_function_description() -> None:
    func_def = FunctionDefinition("myFunction", "A function that does something")
    func_def.add_parameter(
        Parameter.string("inputValue").description("An input for the function").required()
    )
    assert func_def.create_function_description() == {
        "type": "function",
        "function": {
            "name": "myFunction",
            "description": "A function that does something",
            "parameters": {
                "type": "object",
                "properties": {
                    "inputValue": {"type": "string", "description": "An input for the function"}
                },
                "required": ["inputValue"],
                "additionalProperties": False,
            },
        },
    }


def test_no_parameters_seed_hello_world() -> None:
    parameters = FunctionDefinition(
        "helloWorld", "Returns a friendly greeting."
    ).parameters_schema()
    assert parameters == {"type": "object", "properties": {}, "additionalProperties": False}


def test_every_parameter_kind() -> None:
    address = (
        Parameter.object("address")
        .description("Where to deliver")
        .add_property(Parameter.string("street").required())
        .add_property(Parameter.integer("number").default(1))
        .additional_properties(False)
    )
    definition = (
        FunctionDefinition("deliver", additional_properties=True)
        .add_parameter(Parameter.number("weight").required())
        .add_parameter(Parameter.boolean("express").default(False))
        .add_parameter(Parameter.array("items").items(Parameter.string().enum(["a", "b"])))
        .add_parameter(Parameter.enum("size").enum([1, 2, 3]).nullable().default(None))
        .add_parameter(address)
        .add_parameter(Parameter.object("labels").additional_properties(Parameter.string()))
    )
    schema = definition.parameters_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema == {
        "type": "object",
        "properties": {
            "weight": {"type": "number"},
            "express": {"type": "boolean", "default": False},
            "items": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
            "size": {
                "anyOf": [{"type": "integer", "enum": [1, 2, 3]}, {"type": "null"}],
                "default": None,
            },
            "address": {
                "type": "object",
                "description": "Where to deliver",
                "properties": {
                    "street": {"type": "string"},
                    "number": {"type": "integer", "default": 1},
                },
                "required": ["street"],
                "additionalProperties": False,
            },
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "required": ["weight"],
    }
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"weight": 1.5, "size": None, "address": {"street": "x"}})
    assert not validator.is_valid({"weight": 1, "size": 4})
    assert not validator.is_valid({"weight": 1, "address": {"street": "x", "zip": 1}})


@pytest.mark.parametrize(
    ("values", "expected"),
    [(["a"], "string"), ([1.5, 2], "number"), ([True], "boolean"), ([1, "a"], None)],
)
def test_enum_type_is_inferred(values: list[object], expected: str | None) -> None:
    assert Parameter.enum("e").enum(values).to_schema().get("type") == expected


def test_builder_mistakes_are_reported() -> None:
    with pytest.raises(InvalidDefinition, match="items\\(\\) needs an array"):
        Parameter.string("s").items(Parameter.string())
    with pytest.raises(InvalidDefinition, match="add_property\\(\\) needs an object"):
        Parameter.array("a").add_property(Parameter.string("x"))
    with pytest.raises(InvalidDefinition, match="needs a name"):
        Parameter.object("o").add_property(Parameter.string())
    with pytest.raises(InvalidDefinition, match="has no values"):
        Parameter.enum("e").to_schema()
    with pytest.raises(InvalidDefinition, match="at least one value"):
        Parameter.string("e").enum([])
    with pytest.raises(InvalidDefinition, match="already has a parameter 'x'"):
        FunctionDefinition("f").add_parameter(Parameter.string("x")).add_parameter(
            Parameter.integer("x")
        )
    with pytest.raises(InvalidDefinition, match="OpenAI needs"):
        FunctionDefinition("weather.lookup")


def order_product(
    productName: Literal["Pizza", "Burger", "Sushi"],
    quantity: int = 1,
    note: str | None = None,
    extras: list[str] | None = None,
) -> str:
    """Order a product.

    Args:
        productName: What to order.
        quantity: How many.
        note: A note for the kitchen.
        extras: Toppings.
    """
    return f"Ordered {quantity} {productName}."


def test_builder_and_decorator_produce_the_same_schema() -> None:
    built = (
        FunctionDefinition("order_product", "Order a product.")
        .add_parameter(
            Parameter.string("productName")
            .enum(["Pizza", "Burger", "Sushi"])
            .description("What to order.")
            .required()
        )
        .add_parameter(Parameter.integer("quantity").description("How many.").default(1))
        .add_parameter(
            Parameter.string("note").nullable().description("A note for the kitchen.").default(None)
        )
        .add_parameter(
            Parameter.array("extras")
            .items(Parameter.string())
            .nullable()
            .description("Toppings.")
            .default(None)
        )
    )
    derived = tool_from_callable(order_product)
    assert built.parameters_schema() == derived.input_schema
    assert built.to_tool().input_schema == derived.input_schema
    assert built.create_function_description()["function"]["description"] == derived.description


def test_to_tool_carries_every_field() -> None:
    runtime = HttpRuntime(url="https://example.com/weather", method="GET")
    made = FunctionDefinition("weather_lookup", "Weather.").to_tool(
        version="v1.0.0-stable",
        namespace="weather",
        tags=["weather", "weather", "location"],
        default_params={"unit": "C"},
        metadata={"owner": "team-a"},
        runtime=runtime,
        timeout_s=5,
        trusted=True,
    )
    assert made.id == "weather_lookup:v1.0.0-stable"
    assert made.tags == ["weather", "location"]
    assert made.runtime == runtime
    assert made.policy.timeout_s == 5 and made.policy.trusted
    with pytest.raises(InvalidDefinition, match="invalid version"):
        FunctionDefinition("f").to_tool(version="one")
    with pytest.raises(InvalidDefinition, match="timeout_s must be a positive number"):
        FunctionDefinition("f").to_tool(timeout_s=0)


@tool
def bare(x: int) -> int:
    """Return x."""
    return x


@tool(name="renamed", version="v1.0.0-stable", tags=["t"], trusted=True, timeout_s=2.5)
def configured(x: int) -> int:
    """Return x."""
    return x


def test_decorator_keeps_the_function_and_attaches_a_tool() -> None:
    assert bare(3) == 3 and configured(4) == 4
    bare_tool = get_tool(bare)
    assert bare_tool is not None and bare_tool.name == "bare"
    assert bare_tool.runtime == PythonRuntime(target=f"{__name__}:bare")
    assert bare_tool.policy.isolation == "process"
    assert bare_tool.description == "Return x."
    conf = get_tool(configured)
    assert conf is not None
    assert (conf.id, conf.tags, conf.policy.isolation, conf.timeout_s) == (
        "renamed:v1.0.0-stable",
        ["t"],
        "inline",
        2.5,
    )


def test_local_functions_get_no_runtime() -> None:
    @tool
    def local(x: int) -> int:
        return x

    found = get_tool(local)
    assert found is not None and found.runtime is None
    assert import_path(local) is None
    assert get_tool(lambda: None) is None


class Holder:
    @tool
    def method(self, x: int) -> int:
        """Needs an instance: no import path."""
        return x

    @staticmethod
    @tool
    def static(x: int) -> int:
        """Importable as Holder.static."""
        return x


def test_methods_decorated_in_a_class() -> None:
    method_tool, static_tool = get_tool(Holder.method), get_tool(Holder.static)
    assert method_tool is not None and method_tool.runtime is None
    assert list(method_tool.input_schema["properties"]) == ["x"]
    assert static_tool is not None
    assert static_tool.runtime == PythonRuntime(target=f"{__name__}:Holder.static")


def test_decorator_mistakes() -> None:
    with pytest.raises(InvalidDefinition, match="unknown option"):
        tool(versoin="v1.0.0")  # type: ignore[call-overload]
    with pytest.raises(InvalidDefinition, match="not callable"):
        tool_from_callable(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidDefinition, match="invalid tool name"):
        tool_from_callable(bare, name="has space")


def test_output_schema_override() -> None:
    assert tool_from_callable(bare).output_schema is not None
    assert tool_from_callable(bare, output_schema=None).output_schema is None
