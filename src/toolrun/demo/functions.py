"""Demo tools from the seeds, written as plain Python functions.

``weather_lookup`` is deterministic and needs no network: the same city always gives the same
reading, so examples and tests can rely on it.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Literal

KNOWN_TEMPERATURES_C = {"delhi": 28, "berlin": 9, "paris": 14, "london": 11, "tokyo": 17}


def weather_lookup(city: str, unit: Literal["C", "F"] = "C") -> dict[str, object]:
    """Look up the current temperature in a city.

    Args:
        city: Name of the city, e.g. "Delhi".
        unit: "C" for Celsius or "F" for Fahrenheit.
    """
    key = city.strip().lower()
    celsius = KNOWN_TEMPERATURES_C.get(key)
    if celsius is None:
        celsius = int(hashlib.sha256(key.encode()).hexdigest(), 16) % 35
    temperature = celsius if unit == "C" else round(celsius * 9 / 5 + 32)
    return {"temperature": temperature, "unit": unit}


def weather_lookup_v2(city: str, unit: Literal["C", "F", "K"] = "C") -> dict[str, object]:
    """Look up the current temperature in a city (beta: adds Kelvin and the city name).

    Args:
        city: Name of the city, e.g. "Delhi".
        unit: "C", "F" or "K".
    """
    if unit == "K":
        reading = weather_lookup(city, "C")
        return {"city": city, "temperature": int(str(reading["temperature"])) + 273, "unit": "K"}
    return {"city": city, **weather_lookup(city, unit)}


def compress_files(directory: str, output_file: str) -> bool:
    """Compress all files in a directory into a zip archive.

    Args:
        directory: Path to directory containing files to compress
        output_file: Path to output zip file (".zip" is added)

    Returns:
        True if successful, False otherwise
    """
    if not Path(directory).is_dir():
        return False
    shutil.make_archive(output_file, "zip", directory)
    return True


def increment(value: int) -> dict[str, int]:
    """Add one to an integer (the Python twin of binary-increment-tool).

    Args:
        value: The integer to increment.
    """
    return {"result": value + 1}
