"""ToolGroup (seed 001's AbstractOpenFunction) and the namespaced Registry."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolrun.errors import InvalidDefinition, ToolNotFound
from toolrun.registry.builders import FunctionDefinition, Parameter
from toolrun.registry.decorators import tool, tool_from_callable
from toolrun.registry.groups import ToolGroup
from toolrun.registry.registry import Registry
from toolrun.registry.runtimes import HttpRuntime, PythonRuntime
from toolrun.registry.tool import Tool
from toolrun.response import TextItem

OPENAI_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class DeliveryOpenFunction(ToolGroup):
    """Handles product delivery, orders, and shipping details."""

    def __init__(self, products: list[str]) -> None:
        self.products = products

    def listProducts(self) -> TextItem:
        """List the products available for delivery."""
        return TextItem(f"Available products: {', '.join(self.products)}.")

    def orderProduct(self, productName: str, quantity: int) -> TextItem:
        """Order a product.

        Args:
            productName: The product to order.
            quantity: How many to order.
        """
        if productName not in self.products:
            raise ValueError(f"{productName} is not available")
        return TextItem(f"Ordered {quantity} x {productName}.")

    def _restock(self) -> None:
        """Private: not a tool."""


class WeatherOpenFunction(ToolGroup):
    """Weather and forecasts, described by hand like the PHP examples."""

    def definitions(self) -> list[FunctionDefinition]:
        return [
            FunctionDefinition("getWeather", "Current weather of a city.").add_parameter(
                Parameter.string("city").description("City name").required()
            ),
            FunctionDefinition("getForecast", "Forecast for some days.")
            .add_parameter(Parameter.string("city").required())
            .add_parameter(Parameter.integer("days").default(3)),
        ]

    def getWeather(self, city):  # type: ignore[no-untyped-def]
        return {"city": city, "temperature": 21, "unit": "C"}

    def getForecast(self, city, days=3):  # type: ignore[no-untyped-def]
        return [f"{city} day {i + 1}: sunny" for i in range(days)]


@pytest.fixture
def registry() -> Registry:
    reg = Registry()
    reg.register_namespace(
        "delivery",
        "Handles product delivery, orders, and shipping details.",
        DeliveryOpenFunction(["Pizza", "Burger", "Sushi"]),
    )
    reg.register_namespace(
        "weather", "Handles weather and forecasting services.", WeatherOpenFunction()
    )
    return reg


def test_seed_list_products_response(registry: Registry) -> None:
    response = registry.execute_function_call("delivery_listProducts", {})
    assert response.to_array() == {
        "isError": False,
        "content": [{"type": "text", "text": "Available products: Pizza, Burger, Sushi."}],
    }


def test_seed_order_product(registry: Registry) -> None:
    response = registry.execute_function_call(
        "delivery_orderProduct", {"productName": "Pizza", "quantity": 2}
    )
    assert not response.is_error
    assert response.text == "Ordered 2 x Pizza."


def test_definitions_and_namespaces(registry: Registry) -> None:
    definitions = registry.get_function_definitions()
    names = [d["function"]["name"] for d in definitions]
    assert names == [
        "delivery_listProducts",
        "delivery_orderProduct",
        "weather_getWeather",
        "weather_getForecast",
    ]
    order = definitions[1]["function"]
    assert order["description"] == "Order a product."
    assert order["parameters"]["required"] == ["productName", "quantity"]
    assert order["parameters"]["properties"]["quantity"] == {
        "type": "integer",
        "description": "How many to order.",
    }
    assert registry.namespaces() == {
        "delivery": "Handles product delivery, orders, and shipping details.",
        "weather": "Handles weather and forecasting services.",
    }
    assert "- weather: Handles weather" in registry.namespace_overview()
    assert registry.get("delivery_orderProduct").namespace == "delivery"
    assert [t.name for t in registry.tools()] == [n.split("_", 1)[1] for n in names]
    assert [m["name"] for m in registry.get_mcp_tools()] == names


def test_hand_written_definitions_are_used(registry: Registry) -> None:
    forecast = registry.get("weather_getForecast")
    assert forecast.input_schema["properties"]["days"] == {"type": "integer", "default": 3}
    response = registry.execute_function_call("weather_getForecast", {"city": "Berlin"})
    assert response.structured == {"result": [f"Berlin day {i}: sunny" for i in (1, 2, 3)]}
    weather = registry.execute_function_call("weather_getWeather", '{"city": "Delhi"}')
    assert weather.structured == {"city": "Delhi", "temperature": 21, "unit": "C"}


def test_invalid_arguments_list_every_violation(registry: Registry) -> None:
    response = registry.execute_function_call(
        "delivery_orderProduct", {"quantity": "two", "color": "red"}
    )
    assert response.is_error
    text = response.text
    assert text.startswith("ArgumentsInvalid: invalid arguments (3 problems)")
    assert "/productName: 'productName' is a required property" in text
    assert "/quantity: 'two' is not of type 'integer'" in text
    assert "'color' was unexpected" in text


def test_bad_calls_become_error_responses(registry: Registry) -> None:
    unknown = registry.execute_function_call("delivery_orderProducts", {})
    assert unknown.is_error
    assert "did you mean 'delivery_orderProduct'?" in unknown.text
    raised = registry.execute_function_call(
        "delivery_orderProduct", {"productName": "Tacos", "quantity": 1}
    )
    assert raised.to_dict() == {
        "isError": True,
        "content": [{"type": "text", "text": "ValueError: Tacos is not available"}],
    }
    bad_json = registry.execute_function_call("delivery_listProducts", "{not json")
    assert bad_json.is_error and "not valid JSON" in bad_json.text
    not_object = registry.execute_function_call("delivery_listProducts", [1])
    assert not_object.is_error and "must be an object" in not_object.text
    with pytest.raises(ToolNotFound):
        registry.get("nope")


def test_group_call_wraps_everything() -> None:
    group = DeliveryOpenFunction(["Pizza"])
    assert group.method_names() == ["listProducts", "orderProduct"]
    assert group.call("listProducts").text == "Available products: Pizza."
    assert group.call("orderProduct", {"productName": "Soup", "quantity": 1}).is_error
    missing = group.call("_restock")
    assert missing.is_error and "available: listProducts, orderProduct" in missing.text


def test_definitions_must_match_methods() -> None:
    class Broken(ToolGroup):
        def definitions(self) -> list[Any]:
            return [{"type": "function", "function": {"name": "ghost", "parameters": {}}}]

    with pytest.raises(InvalidDefinition, match="no public method of that name"):
        Registry().register(Broken(), "x")


def test_default_params_are_merged_under_arguments() -> None:
    def greet(name: str, greeting: str) -> str:
        return f"{greeting}, {name}!"

    reg = Registry()
    reg.register(Tool.model_validate({"name": "greet"}), func=greet)  # schema-less tool
    reg.register(
        tool_from_callable(greet, name="hello", default_params={"greeting": "Hello"}),
        namespace="social",
        func=greet,
    )
    assert reg.execute_function_call("social_hello", {"name": "Ann"}).text == "Hello, Ann!"
    assert (
        reg.execute_function_call("social_hello", {"name": "Ann", "greeting": "Hi"}).text
        == "Hi, Ann!"
    )
    assert reg.execute_function_call("greet", {"name": "B", "greeting": "Yo"}).text == "Yo, B!"


def add(a: int, b: int = 1) -> int:
    """Add two numbers."""
    return a + b


@tool(namespace="maths", name="plus")
def plus(a: int, b: int) -> int:
    """Add."""
    return a + b


def test_register_functions_decorated_and_tools_with_runtimes() -> None:
    reg = Registry(separator="-")
    assert reg.register(add, "calc", "Calculator") == ["calc-add"]
    assert reg.register(plus) == ["maths-plus"]
    assert reg.namespaces() == {"calc": "Calculator", "maths": ""}
    assert reg.execute_function_call("calc-add", {"a": 2}).structured == {"result": 3}
    assert reg.execute_function_call("maths-plus", {"a": 2, "b": 5}).structured == {"result": 7}
    imported = tool_from_callable(add, name="imported")
    assert isinstance(imported.runtime, PythonRuntime)
    reg.register(imported)  # no callable given: the runtime target is imported on call
    assert reg.execute_function_call("imported", {"a": 1, "b": 1}).structured == {"result": 2}
    remote = Tool(name="remote", runtime=HttpRuntime(url="https://example.com/x"))
    reg.register(remote)
    response = reg.execute_function_call("remote", {})
    assert response.is_error and "NotExecutable" in response.text
    assert reg.unregister("remote") == remote
    assert "remote" not in reg and len(reg) == 3
    with pytest.raises(InvalidDefinition, match="cannot register int"):
        reg.register(5)


def test_collisions_are_refused_atomically() -> None:
    reg = Registry()
    reg.register(add, "a.b")  # exported as a_b_add
    with pytest.raises(InvalidDefinition, match=r"'a_b_add' of tool 'add'.*already used"):
        reg.register(add, "a_b")
    assert reg.names() == ["a_b_add"]

    class Twice(ToolGroup):
        def add(self) -> None:
            """One."""

        def add_(self) -> None:
            """Two."""

    assert reg.register(Twice(), "t") == ["t_add", "t_add_"]


def test_long_names_are_truncated_with_a_stable_hash() -> None:
    reg = Registry()
    namespace = "n" * 70
    first = reg.register(add, namespace)[0]
    second = reg.register(plus, namespace)[0]
    assert len(first) == 64 and OPENAI_NAME.match(first)
    assert first[:55] == second[:55] and first != second
    assert first == Registry().register(add, namespace)[0]  # stable across registries
    assert reg.execute_function_call(first, {"a": 1}).structured == {"result": 2}


def test_a_namespace_that_cannot_be_stored_is_a_definition_error() -> None:
    with pytest.raises(InvalidDefinition, match="namespace"):
        Registry().register(Tool(name="a"), "\ud800")  # a lone surrogate: not encodable


def test_registry_options_are_checked() -> None:
    with pytest.raises(InvalidDefinition, match="separator"):
        Registry(separator=".")
    with pytest.raises(InvalidDefinition, match="max_name_length"):
        Registry(max_name_length=100)


@given(
    namespace=st.text(
        st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=100,
    ),
    name=st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}", fullmatch=True),
)
def test_every_exported_name_is_openai_safe(namespace: str, name: str) -> None:
    reg = Registry()
    exported = reg.register(Tool(name=name), namespace)[0]
    assert OPENAI_NAME.match(exported)
    assert [d["function"]["name"] for d in reg.get_function_definitions()] == [exported]


async def slow_double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


def test_async_functions() -> None:
    reg = Registry()
    reg.register(slow_double)
    reg.register(add)
    assert reg.execute_function_call("slow_double", {"x": 4}).structured == {"result": 8}

    async def inside_loop() -> None:
        assert (await reg.aexecute_function_call("slow_double", {"x": 5})).structured == {
            "result": 10
        }
        assert (await reg.aexecute_function_call("add", {"a": 5})).structured == {"result": 6}
        assert (await reg.aexecute_function_call("missing", {})).is_error
        blocked = reg.execute_function_call("slow_double", {"x": 1})
        assert blocked.is_error and "use ainvoke" in blocked.text

    asyncio.run(inside_loop())
