"""JSON Schema from signatures and docstrings, argument validation and binding."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Annotated, Any, Literal, Optional

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from toolrun.errors import ArgumentsInvalid, InvalidDefinition
from toolrun.registry.schema import (
    analyze_callable,
    argument_errors,
    input_schema_for,
    parse_docstring,
    validate_arguments,
)
from toolrun.response import TextItem


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    """A postal address."""

    street: str
    number: int = 1


def everything(
    name: str,
    count: int,
    ratio: float,
    flag: bool,
    mode: Literal["fast", "slow"],
    color: Color,
    maybe: Optional[int],  # noqa: UP045 - the typing spelling must work too
    tags: list[str],
    scores: dict[str, float],
    pair: tuple[int, str],
    limit: Annotated[int, Field(description="At most this many", ge=1, le=10)],
    when: datetime,
    day: date,
    address: Address,
    note: str | None = None,
    retries: int = 3,
) -> None:
    """Do everything."""


def valid_everything() -> dict[str, Any]:
    return {
        "name": "n",
        "count": 1,
        "ratio": 0.5,
        "flag": True,
        "mode": "fast",
        "color": "red",
        "maybe": None,
        "tags": ["a"],
        "scores": {"x": 1.5},
        "pair": [1, "a"],
        "limit": 3,
        "when": "2024-05-01T10:00:00+00:00",
        "day": "2024-05-01",
        "address": {"street": "Main"},
    }


def test_schema_is_valid_2020_12_and_describes_each_type() -> None:
    schema = input_schema_for(everything)
    jsonschema.Draft202012Validator.check_schema(schema)
    props = schema["properties"]
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert props["name"] == {"type": "string"}
    assert props["count"] == {"type": "integer"}
    assert props["ratio"] == {"type": "number"}
    assert props["flag"] == {"type": "boolean"}
    assert props["mode"] == {"type": "string", "enum": ["fast", "slow"]}
    assert props["color"] == {"$ref": "#/$defs/Color"}
    assert schema["$defs"]["Color"]["enum"] == ["red", "blue"]
    assert props["maybe"] == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["scores"] == {"type": "object", "additionalProperties": {"type": "number"}}
    assert props["pair"]["prefixItems"] == [{"type": "integer"}, {"type": "string"}]
    assert props["limit"] == {
        "type": "integer",
        "description": "At most this many",
        "minimum": 1,
        "maximum": 10,
    }
    assert props["when"] == {"type": "string", "format": "date-time"}
    assert props["day"] == {"type": "string", "format": "date"}
    assert props["address"] == {"$ref": "#/$defs/Address"}
    assert schema["$defs"]["Address"]["required"] == ["street"]
    assert props["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
    assert props["retries"] == {"type": "integer", "default": 3}
    # Required = no default (Optional without a default is still required).
    assert schema["required"] == [
        "name", "count", "ratio", "flag", "mode", "color", "maybe", "tags", "scores",
        "pair", "limit", "when", "day", "address",
    ]  # fmt: skip


def test_schema_validates_good_and_rejects_bad_arguments() -> None:
    schema = input_schema_for(everything)
    validate_arguments(schema, valid_everything())
    bad = valid_everything() | {
        "mode": "medium",
        "color": "green",
        "pair": [1, 2],
        "limit": 11,
        "day": "yesterday",
        "when": "not a time",
        "address": {"number": 2},
        "unknown": 1,
    }
    bad.pop("name")
    with pytest.raises(ArgumentsInvalid) as info:
        validate_arguments(schema, bad)
    paths = {d["path"] for d in info.value.detail["violations"]}
    assert paths == {
        "",  # the unexpected property
        "/name",
        "/mode",
        "/color",
        "/pair/1",
        "/limit",
        "/day",
        "/when",
        "/address/street",
    }
    assert info.value.message.startswith("invalid arguments (9 problems): ")
    assert "/limit: 11 is greater than the maximum of 10" in info.value.message
    assert "(root): Additional properties are not allowed ('unknown' was unexpected)" in (
        info.value.message
    )


def test_validate_arguments_rejects_non_objects() -> None:
    with pytest.raises(ArgumentsInvalid, match="arguments must be an object, got list"):
        validate_arguments({"type": "object"}, [1])


def test_long_messages_are_shortened() -> None:
    errors = argument_errors(
        {"type": "object", "properties": {"x": {"type": "integer"}}}, {"x": "y" * 1000}
    )
    assert len(errors) == 1
    assert len(errors[0]["message"]) == 200
    assert errors[0]["message"].endswith("...")


def google(city: str, days: int = 1) -> None:
    """Get a forecast.

    Uses the simulated weather service.

    Args:
        city: Name of the city.
        days: How many days
            to forecast.
    """


def numpy_style(city: str, days: int = 1) -> None:
    """Get a forecast.

    Parameters
    ----------
    city : str
        Name of the city.
    days : int, optional
        How many days to forecast.
    """


def rest_style(city: str, days: int = 1) -> None:
    """Get a forecast.

    :param city: Name of the city.
    :param days: How many days to forecast.
    """


@pytest.mark.parametrize("func", [google, numpy_style, rest_style])
def test_descriptions_come_from_any_docstring_style(func: Any) -> None:
    spec = analyze_callable(func)
    assert spec.doc.summary == "Get a forecast."
    assert spec.input_schema["properties"]["city"]["description"] == "Name of the city."
    assert spec.input_schema["properties"]["days"]["description"] == "How many days to forecast."


def test_description_keeps_the_long_text() -> None:
    assert parse_docstring(google).description == (
        "Get a forecast.\n\nUses the simulated weather service."
    )
    assert parse_docstring(lambda: None).description == ""


def test_field_description_wins_over_docstring() -> None:
    def f(x: Annotated[int, Field(description="from Field")]) -> None:
        """F.

        Args:
            x: from the docstring
        """

    assert input_schema_for(f)["properties"]["x"]["description"] == "from Field"


def test_untyped_parameters_use_docstring_types() -> None:
    def compress_files(directory, output_file, level=9):  # type: ignore[no-untyped-def]
        """Compress all files in a directory into a zip archive.

        Args:
            directory (str): Path to directory containing files to compress
            output_file (str): Path to output zip file
            level (int, optional): Compression level
        """

    schema = input_schema_for(compress_files)
    assert schema["properties"] == {
        "directory": {
            "type": "string",
            "description": "Path to directory containing files to compress",
        },
        "output_file": {"type": "string", "description": "Path to output zip file"},
        "level": {"type": "integer", "default": 9, "description": "Compression level"},
    }
    assert schema["required"] == ["directory", "output_file"]


def test_self_cls_and_varargs_are_skipped() -> None:
    class Holder:
        def method(self, a: int, *args: int, **kwargs: int) -> None:
            """M."""

        @classmethod
        def make(cls, b: str) -> None:
            """C."""

    unbound = input_schema_for(Holder.method)
    assert list(unbound["properties"]) == ["a"]
    assert "additionalProperties" not in unbound  # **kwargs accepts extra keys
    assert list(input_schema_for(Holder().method)["properties"]) == ["a"]
    assert list(input_schema_for(Holder.make)["properties"]) == ["b"]


def test_no_parameters() -> None:
    assert input_schema_for(lambda: None) == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }


def test_parameter_names_that_shadow_pydantic_attributes() -> None:
    def f(json: str, model_config: int, schema: bool = False) -> None:
        """F."""

    spec = analyze_callable(f)
    assert list(spec.input_schema["properties"]) == ["json", "model_config", "schema"]
    assert spec.bind({"json": "j", "model_config": 2}) == ([], {"json": "j", "model_config": 2})


def test_field_as_default() -> None:
    def f(x: int = Field(5, description="X", ge=0)) -> int:
        return x

    spec = analyze_callable(f)
    assert spec.input_schema["properties"]["x"] == {
        "type": "integer",
        "default": 5,
        "description": "X",
        "minimum": 0,
    }
    assert "required" not in spec.input_schema


def test_bind_coerces_json_into_python_types() -> None:
    spec = analyze_callable(everything)
    args, kwargs = spec.bind(valid_everything())
    assert args == []
    assert kwargs["color"] is Color.RED
    assert kwargs["address"] == Address(street="Main", number=1)
    assert kwargs["pair"] == (1, "a")
    assert kwargs["when"].year == 2024 and kwargs["when"].tzinfo is not None
    assert kwargs["day"] == date(2024, 5, 1)
    assert "note" not in kwargs  # omitted: the function's own default applies


def test_bind_positional_only_and_extra_kwargs() -> None:
    def f(a: int, /, b: int = 2, **rest: Any) -> tuple[int, int, dict[str, Any]]:
        return a, b, rest

    spec = analyze_callable(f)
    assert spec.call({"a": 1, "z": 9}) == (1, 2, {"z": 9})


def test_bind_reports_unexpected_and_invalid_arguments() -> None:
    def f(a: int) -> None:
        """F."""

    spec = analyze_callable(f)
    with pytest.raises(ArgumentsInvalid, match="unexpected arguments: b"):
        spec.bind({"a": 1, "b": 2})
    with pytest.raises(ArgumentsInvalid) as info:
        spec.bind({"a": "x"})
    assert info.value.detail["violations"][0]["path"] == "/a"


class Opaque:
    """No JSON Schema for this."""


def test_types_without_json_schema_are_refused_with_the_parameter_named() -> None:
    def f(ok: int, thing: Opaque) -> None:
        """F."""

    with pytest.raises(InvalidDefinition, match="parameter 'thing'"):
        analyze_callable(f)


def test_unresolvable_annotation_is_refused() -> None:
    def f(x: DoesNotExist) -> None:  # type: ignore[name-defined]  # noqa: F821
        """F."""

    with pytest.raises(InvalidDefinition, match="cannot resolve the type hints"):
        analyze_callable(f)


def test_output_schema_follows_response_structured_content() -> None:
    def number() -> int:
        return 1

    def model() -> Address:
        return Address(street="s")

    def text() -> TextItem:
        return TextItem("x")

    def ambiguous() -> Address | int:
        return 1

    def nothing() -> None:
        pass

    assert analyze_callable(number).output_schema == {
        "type": "object",
        "properties": {"result": {"type": "integer"}},
        "required": ["result"],
    }
    model_schema = analyze_callable(model).output_schema
    assert model_schema is not None and model_schema["type"] == "object"
    assert "street" in model_schema["properties"]
    assert analyze_callable(text).output_schema is None
    assert analyze_callable(ambiguous).output_schema is None
    assert analyze_callable(nothing).output_schema is None


@given(st.integers(), st.text())
def test_generated_schema_agrees_with_python_types(count: int, name: str) -> None:
    def f(count: int, name: str, flag: bool = False) -> None:
        """F."""

    schema = input_schema_for(f)
    validate_arguments(schema, {"count": count, "name": name})
    assert argument_errors(schema, {"count": name, "name": count}) != []
