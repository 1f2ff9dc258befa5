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


# -- values given in order, names, phrases (the BFCL-style prompts) ---------------------------


def num(description: str = "", kind: str = "integer") -> dict[str, Any]:
    return {"type": kind, "description": description}


def text(description: str = "") -> dict[str, Any]:
    return {"type": "string", "description": description}


def test_numbered_parameters_take_unlabelled_numbers_in_order() -> None:
    schema = obj(("num1", "num2"), num1=num("First number."), num2=num("Second number."))
    assert args("Find the greatest common divisor of 12 and 18", schema) == {"num1": 12, "num2": 18}
    coordinates = obj(("x", "y"), x=num("The x-coordinate."), y=num("The y-coordinate."))
    assert args("the other two sides are 4 and 5", coordinates) == {"x": 4, "y": 5}


def test_a_count_in_words_is_not_a_value_of_a_numbered_parameter() -> None:
    schema = obj(
        ("charge1", "charge2", "distance"),
        charge1=num("The first charge in coulombs."),
        charge2=num("The second charge in coulombs."),
        distance=num("The distance between the charges in meters."),
    )
    got = args("the force between two charges of 5C and 7C placed 3 meters apart", schema)
    assert got == {"charge1": 5, "charge2": 7, "distance": 3}


def test_units_point_numbers_at_their_parameters() -> None:
    schema = obj(
        ("mass1", "temperature1", "mass2", "temperature2"),
        mass1=num("The mass of the first body (kg)."),
        temperature1=num("The initial temperature of the first body (Celsius)."),
        mass2=num("The mass of the second body (kg)."),
        temperature2=num("The initial temperature of the second body (Celsius)."),
        specific_heat=num("The specific heat capacity in kJ/kg/K.", "number"),
    )
    prompt = "20 kg of water at 30 degree Celsius mixed with 15 kg of water at 60 degree Celsius"
    assert args(prompt, schema) == {
        "mass1": 20,
        "temperature1": 30,
        "mass2": 15,
        "temperature2": 60,
    }


def test_scales_prefixes_and_percentages() -> None:
    schema = obj(shares=num("Outstanding shares."), payout=num("Total payout in USD."))
    got = args("100 million outstanding shares and a payout of 50 million USD", schema)
    assert got == {"shares": 100_000_000, "payout": 50_000_000}
    circuit = obj(inductance=num("The inductance (L) in henries (H).", "number"))
    assert args("an inductance of 50mH", circuit) == {"inductance": 0.05}
    rate = obj(annual_rate=num("The annual interest rate.", "number"))
    assert args("at an annual rate of 5%", rate) == {"annual_rate": 0.05}
    share = obj(discount=num("Discount in percent.", "number"))
    assert args("a discount of 25%", share) == {"discount": 25}


def test_an_optional_parameter_needs_more_than_a_loose_word() -> None:
    schema = obj(("radius",), radius=num("The radius."), precision=num("Decimal places."))
    assert args("the area of a circle with a radius of 5 and 2 more", schema) == {"radius": 5}


def test_formulas_for_function_parameters() -> None:
    schema = obj(("function",), function=text("The polynomial function."))
    assert args("the derivative of 3x^2 + 2x - 1", schema) == {"function": "3x^2 + 2x - 1"}
    charges = obj(charge=num("The charge.", "number"))
    assert args("a charge of 1e-9", charges) == {"charge": 1e-9}


def test_names_go_to_the_parameter_that_asks_for_them() -> None:
    movies = obj(("actor_name", "year"), actor_name=text("The name of the actor."), year=num())
    got = args("movies starring Leonardo DiCaprio in the year 2010", movies)
    assert got == {"actor_name": "Leonardo DiCaprio", "year": 2010}
    stocks = obj(("company_name",), company_name=text("Name of the company."))
    assert args("stock price for the company Amazon", stocks) == {"company_name": "Amazon"}
    museum = obj(("museum_name",), museum_name=text("The name of the museum."))
    assert args("opening hours of the Louvre Museum in Paris", museum) == {
        "museum_name": "Louvre Museum"
    }


def test_a_verb_opening_the_prompt_is_no_name() -> None:
    schema = obj(("dataset",), dataset=text("The dataset to train on."))
    assert args("Train a forest on dataset my_data_v2", schema) == {"dataset": "my_data_v2"}


def test_the_value_after_the_words_naming_the_parameter() -> None:
    schema = obj(("patient_id",), patient_id=text("The patient's identifier."))
    assert args("the patient with id 546382 and an MRI report", schema) == {"patient_id": "546382"}
    snp = obj(("snp_id",), snp_id=text("The SNP identifier."))
    assert args("the mutation of SNP (a variant) ID rs6034464", snp) == {"snp_id": "rs6034464"}


def test_pairs_given_from_to_or_between() -> None:
    route = obj(
        ("start_location", "end_location"),
        start_location=text("Starting city."),
        end_location=text("Destination city."),
    )
    assert args("the distance between Boston, MA and Washington, DC", route) == {
        "start_location": "Boston, MA",
        "end_location": "Washington, DC",
    }
    assert args("directions from the Eiffel Tower to the Louvre", route) == {
        "start_location": "Eiffel Tower",
        "end_location": "Louvre",
    }
    colours = obj(("color1", "color2"), color1=text("First color."), color2=text("Second color."))
    assert args("mix yellow and blue colors", colours) == {"color1": "yellow", "color2": "blue"}


def test_a_place_keeps_its_region_unless_another_parameter_wants_it() -> None:
    one = obj(("location",), location=text("The city and state."))
    assert args("a hospital around Denver, Colorado", one) == {"location": "Denver, Colorado"}
    two = obj(("city", "country"), city=text("The city."), country=text("The country."))
    assert args("the humidity in Tokyo, Japan", two) == {"city": "Tokyo", "country": "Japan"}


def test_natural_dates_in_the_format_the_description_asks() -> None:
    schema = obj(("start_date",), start_date=text("The date the stay begins."))
    assert args("starting from March 10th, 2023", schema) == {"start_date": "2023-03-10"}
    us = obj(("from_date",), from_date=text("The start date. The format is MM-DD-YYYY."))
    assert args("from July 10, 2022", us) == {"from_date": "07-10-2022"}
    stay = obj(
        ("check_in_date", "check_out_date"),
        check_in_date=text("Check-in date."),
        check_out_date=text("Check-out date."),
    )
    assert args("from 10th December 2022 to December 12 2022", stay) == {
        "check_in_date": "2022-12-10",
        "check_out_date": "2022-12-12",
    }
    dates = obj(
        ("start_date", "end_date"), start_date=text("First day."), end_date=text("Last day.")
    )
    assert args("from April 3rd to April 5th 2023", dates) == {
        "start_date": "2023-04-03",
        "end_date": "2023-04-05",
    }


def test_lists_in_brackets_quotes_and_names() -> None:
    arrays = obj(
        ("array_1", "array_2"),
        array_1={"type": "array", "items": {"type": "integer"}},
        array_2={"type": "array", "items": {"type": "integer"}},
    )
    assert args("Control [10, 15, 12] and Treated [18, 16, 17]", arrays) == {
        "array_1": [10, 15, 12],
        "array_2": [18, 16, 17],
    }
    predictors = obj(("predictors",), predictors={"type": "array", "items": {"type": "string"}})
    assert args("predictors 'Age', 'Income' and 'Education'", predictors) == {
        "predictors": ["Age", "Income", "Education"]
    }
    parties = obj(("parties",), parties={"type": "array", "items": {"type": "string"}})
    assert args("a contract between John and Alice", parties) == {"parties": ["John", "Alice"]}


def test_a_flag_the_prompt_asks_for_by_its_words() -> None:
    schema = obj(("team",), team=text("The team."), include_details={"type": "boolean"})
    got = args("standings of the Golden State Warriors with details", schema)
    assert got == {"team": "Golden State Warriors", "include_details": True}


def test_what_a_type_parameter_classifies() -> None:
    schema = obj(("room_type",), room_type=text("Type of the room."))
    assert args("book a single room near Manhattan", schema) == {"room_type": "single"}


def test_values_a_description_quotes() -> None:
    schema = obj(("model",), model=text("The model used, options: 'Darwin', 'Lamarck'."))
    assert args("predict it using the Darwin model", schema) == {"model": "Darwin"}


def test_one_value_left_for_one_required_parameter() -> None:
    schema = obj(("species",), species=text("The species."), years=num("Number of years."))
    assert args("the evolution of Homo Sapiens over 50 years", schema) == {
        "species": "Homo Sapiens",
        "years": 50,
    }
    two = obj(("molecule", "organelle"), molecule=text(), organelle=text())
    found = extract_arguments("the role of ATP synthase", two, now=NOW)
    assert found.missing == ["molecule", "organelle"]  # one name, two parameters: not guessed
