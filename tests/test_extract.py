"""The schema-guided argument extractor, case by case (no LLM, a fixed ``now``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from toolrun.demo import functions
from toolrun.nl.extract import extract_arguments
from toolrun.registry.schema import input_schema_for

NOW = datetime(2024, 5, 1, 9, 0)  # a Wednesday
WEATHER = input_schema_for(functions.weather_lookup)


def obj(required: tuple[str, ...] = (), **props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(required)}


def args(prompt: str, schema: dict[str, Any]) -> dict[str, Any]:
    return extract_arguments(prompt, schema, now=NOW).arguments


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("What's the weather in Paris?", {"city": "Paris", "unit": "C"}),
        ("weather in New York in Fahrenheit", {"city": "New York", "unit": "F"}),
        ("weather in new york in fahrenheit", {"city": "new york", "unit": "F"}),
        ("temperature for Tokyo, unit F", {"city": "Tokyo", "unit": "F"}),
        ("city Berlin please", {"city": "Berlin", "unit": "C"}),
    ],
)
def test_weather_prompts(prompt: str, expected: dict[str, Any]) -> None:
    assert args(prompt, WEATHER) == expected


def test_a_required_argument_not_in_the_prompt_is_missing_not_guessed() -> None:
    found = extract_arguments("what's the weather like?", WEATHER, now=NOW)
    assert found.missing == ["city"]
    assert "city" not in found.arguments
    assert found.arguments == {"unit": "C"}  # the schema's default
    assert found.evidence["unit"]["source"] == "default"


def test_evidence_points_at_the_prompt_span() -> None:
    prompt = "weather in Paris"
    found = extract_arguments(prompt, WEATHER, now=NOW)
    span = found.evidence["city"]
    assert prompt[span["start"] : span["end"]] == "Paris"
    assert 0 < found.confidence["city"] <= 1


@pytest.mark.parametrize(
    ("prompt", "schema", "expected"),
    [
        ("add 41", obj(value={"type": "integer"}), {"value": 41}),
        ("run 5 km", obj(distance_km={"type": "number"}), {"distance_km": 5}),
        (
            "a 2.5 km walk",
            obj(distance={"type": "number", "description": "in km"}),
            {"distance": 2.5},
        ),
        (
            "discount of 10%",
            obj(discount={"type": "number", "description": "percent"}),
            {"discount": 10},
        ),
        ("costs $3.50", obj(price={"type": "number"}), {"price": 3.5}),
        ("1,250 items", obj(count={"type": "integer"}), {"count": 1250}),
        ("-3 degrees", obj(delta={"type": "integer"}), {"delta": -3}),
    ],
)
def test_numbers_with_units(prompt: str, schema: dict[str, Any], expected: dict[str, Any]) -> None:
    assert args(prompt, schema) == expected


def test_numbers_go_to_the_parameter_their_words_name() -> None:
    schema = obj(
        people={"type": "integer", "description": "number of people"},
        distance_km={"type": "number"},
    )
    assert args("table for 3 people, 5 km from here", schema) == {"people": 3, "distance_km": 5}
    assert args("5 km away, for 3 people", schema) == {"people": 3, "distance_km": 5}


def test_a_fraction_is_not_an_integer() -> None:
    found = extract_arguments("add 2.5", obj(("value",), value={"type": "integer"}), now=NOW)
    assert found.missing == ["value"]


def test_two_unlabelled_numbers_for_two_parameters_are_not_guessed() -> None:
    found = extract_arguments(
        "7 and 9", obj(("a", "b"), a={"type": "integer"}, b={"type": "integer"}), now=NOW
    )
    assert found.missing == ["a", "b"]


def test_quoted_strings() -> None:
    schema = obj(title={"type": "string"}, body={"type": "string"})
    got = args('title "Team dinner" body \'see you "there"\'', schema)
    assert got == {"title": "Team dinner", "body": 'see you "there"'}


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("sort ascending", "asc"),
        ("in DESC order", "desc"),
        ("order: asc", "asc"),
    ],
)
def test_enum_values(prompt: str, expected: str) -> None:
    schema = obj(
        order={
            "type": "string",
            "enum": ["asc", "desc"],
            "description": "asc (ascending) or desc (descending)",
        }
    )
    assert args(prompt, schema) == {"order": expected}


def test_enum_values_by_their_words() -> None:
    schema = obj(mode={"enum": ["fast_track", "slow_lane"]})
    assert args("take the slow lane", schema) == {"mode": "slow_lane"}


def test_a_lone_letter_is_not_an_enum_value_inside_text() -> None:
    schema = obj(grade={"enum": ["a", "b"]})
    assert args("give me a hand", schema) == {}


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("resize with compression", True),
        ("resize without compression", False),
        ("compress: yes", True),
        ("compress=false", False),
        ("enable compression", True),
        ("disable compression", False),
    ],
)
def test_booleans(prompt: str, expected: bool) -> None:
    assert args(prompt, obj(compress={"type": "boolean"})) == {"compress": expected}


@pytest.mark.parametrize(
    ("prompt", "fmt", "expected"),
    [
        ("on 2024-06-01", "date", "2024-06-01"),
        ("tomorrow", "date", "2024-05-02"),
        ("yesterday", "date", "2024-04-30"),
        ("next Monday", "date", "2024-05-06"),
        ("next Wednesday", "date", "2024-05-08"),
        ("on Friday", "date", "2024-05-03"),
        ("in 10 days", "date", "2024-05-11"),
        ("tomorrow at 3pm", "date-time", "2024-05-02T15:00:00"),
        ("2024-06-01T10:30", "date-time", "2024-06-01T10:30:00"),
        ("at 3pm", "time", "15:00:00"),
        ("at 12am", "time", "00:00:00"),
        ("at 17:45", "time", "17:45:00"),
    ],
)
def test_dates_and_times(prompt: str, fmt: str, expected: str) -> None:
    schema = obj(when={"type": "string", "format": fmt})
    assert args(prompt, schema) == {"when": expected}


def test_dates_by_parameter_name_without_a_format() -> None:
    assert args("remind me tomorrow", obj(date={"type": "string"})) == {"date": "2024-05-02"}


def test_emails_and_urls() -> None:
    schema = obj(recipient_email={"type": "string"}, link={"type": "string", "format": "uri"})
    got = args("send https://example.com/a?b=1, to bob.smith+x@example.org.", schema)
    assert got == {
        "recipient_email": "bob.smith+x@example.org",
        "link": "https://example.com/a?b=1",
    }


def test_lists_for_array_parameters() -> None:
    schema = obj(toppings={"type": "array", "items": {"type": "string"}})
    assert args("pizza with toppings ham, cheese and olives", schema) == {
        "toppings": ["ham", "cheese", "olives"]
    }
    numbers = obj(values={"type": "array", "items": {"type": "integer"}})
    assert args("sum 1, 2 and 3", numbers) == {"values": [1, 2, 3]}


def test_lists_of_enum_values() -> None:
    schema = obj(days={"type": "array", "items": {"enum": ["mon", "tue", "wed"]}})
    assert args("days mon, tue and wed", schema) == {"days": ["mon", "tue", "wed"]}


def test_paths() -> None:
    schema = input_schema_for(functions.compress_files)
    assert args("compress /tmp/in into out.zip", schema) == {
        "directory": "/tmp/in",
        "output_file": "out.zip",
    }


def test_every_result_validates_against_the_schema() -> None:
    schema = obj(("n",), n={"type": "integer", "maximum": 10})
    found = extract_arguments("n is 99", schema, now=NOW)
    assert found.arguments == {}
    assert found.missing == ["n"]
    assert found.rejected


def test_extraction_is_deterministic() -> None:
    prompt = "weather in Paris tomorrow at 3pm in F"
    first = extract_arguments(prompt, WEATHER, now=NOW).to_dict()
    assert all(extract_arguments(prompt, WEATHER, now=NOW).to_dict() == first for _ in range(3))


def test_an_empty_schema_takes_nothing() -> None:
    found = extract_arguments("do 5 things in Paris", {"type": "object"}, now=NOW)
    assert found.arguments == {} and found.missing == []


def test_a_parameter_named_in_the_prompt_takes_its_value() -> None:
    """``a=2``, ``unit: F``, ``limit is 10``: the prompt names the parameter, so the value is
    its own, whatever the descriptions suggest (BFCL simple_python_4 paired them wrongly)."""
    quadratic = {
        "type": "object",
        "properties": {
            "a": {"type": "integer", "description": "Coefficient of x squared"},
            "b": {"type": "integer", "description": "Coefficient of x"},
            "c": {"type": "integer", "description": "Constant term in the quadratic equation."},
        },
        "required": ["a", "b", "c"],
    }
    found = extract_arguments("Solve a quadratic equation where a=2, b=6, and c=5", quadratic)
    assert found.arguments == {"a": 2, "b": 6, "c": 5}
    assert found.evidence["a"]["source"] == "explicit"
    named = {
        "type": "object",
        "properties": {
            "unit": {"type": "string", "enum": ["C", "F"]},
            "limit": {"type": "integer"},
            "city": {"type": "string"},
        },
    }
    prompt = 'weather with unit: F and limit is 10 for city="New York"'
    assert extract_arguments(prompt, named).arguments == {
        "unit": "F",
        "limit": 10,
        "city": "New York",
    }
    # A value of the wrong type is not taken on the parameter's name alone.
    assert "limit" not in extract_arguments("limit is high", named).arguments
