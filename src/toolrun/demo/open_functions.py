"""Seed 001's example Open Functions, as tool groups: ``delivery`` and ``weather``.

Module-level instances (``delivery``, ``weather``) make every method importable by path
(``toolrun.demo.open_functions:delivery.orderProduct``), so worker processes can run them.
"""

from __future__ import annotations

from toolrun.demo.functions import weather_lookup
from toolrun.registry.groups import ToolGroup
from toolrun.response import TextItem


class DeliveryOpenFunction(ToolGroup):
    """Handles product delivery, orders, and shipping details."""

    namespace = "delivery"

    def __init__(self, products: list[str]) -> None:
        self.products = products

    def listProducts(self) -> TextItem:
        """List the products available for delivery."""
        return TextItem(f"Available products: {', '.join(self.products)}.")

    def orderProduct(self, productName: str, quantity: int = 1) -> TextItem:
        """Order a product for delivery.

        Args:
            productName: The product to order, e.g. "Pizza".
            quantity: How many to order.
        """
        if productName not in self.products:
            raise ValueError(
                f"{productName!r} is not available; choose one of {', '.join(self.products)}"
            )
        if quantity < 1:
            raise ValueError("quantity must be at least 1")
        return TextItem(f"Ordered {quantity} x {productName}. It will arrive in 30 minutes.")


class WeatherOpenFunction(ToolGroup):
    """Handles weather and forecasting services."""

    namespace = "weather"

    def showWeather(self, location: str) -> TextItem:
        """Show the current weather for a location.

        Args:
            location: City name, e.g. "Berlin".
        """
        reading = weather_lookup(location)
        return TextItem(f"The weather in {location} is {reading['temperature']}°C.")

    def showForecast(self, location: str, days: int = 3) -> TextItem:
        """Simulate a multi-day forecast for a location.

        Args:
            location: City name, e.g. "Berlin".
            days: Number of days, 1 to 7.
        """
        if not 1 <= days <= 7:
            raise ValueError("days must be between 1 and 7")
        base = int(str(weather_lookup(location)["temperature"]))
        lines = [f"Day {d + 1}: {base + (d % 3) - 1}°C" for d in range(days)]
        return TextItem(f"Forecast for {location}:\n" + "\n".join(lines))


delivery = DeliveryOpenFunction(["Pizza", "Burger", "Sushi"])
weather = WeatherOpenFunction()
