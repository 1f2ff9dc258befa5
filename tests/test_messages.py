"""Messages (seed 001): the classes, MessageList and its extensions, OpenAI and Anthropic
formats (round trips both ways), and answering a model turn's tool calls."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from toolrun.demo.open_functions import DeliveryOpenFunction, WeatherOpenFunction
from toolrun.messages import (
    AssistantMessage,
    DeveloperMessage,
    ImagePart,
    MessageList,
    RegistryExtension,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    UserMessage,
    arun_tool_calls,
    from_anthropic,
    from_openai,
    message_from_openai,
    run_tool_calls,
    to_anthropic,
    to_openai,
)
from toolrun.registry.registry import Registry

PIXEL = "iVBORw0KGgo="


def registry() -> Registry:
    found = Registry()
    found.register_namespace(
        "delivery",
        "Handles product delivery, orders, and shipping details.",
        DeliveryOpenFunction(["Pizza", "Burger", "Sushi"]),
    )
    found.register_namespace(
        "weather", "Handles weather and forecasting services.", WeatherOpenFunction()
    )
    return found


def conversation() -> list[Any]:
    """Every kind of message and content both formats can carry."""
    return [
        SystemMessage("You are a helpful assistant."),
        UserMessage("Order 2 burgers and tell me the weather in Berlin."),
        AssistantMessage(
            "On it.",
            [
                ToolCall(
                    "call_1", "delivery_orderProduct", {"productName": "Burger", "quantity": 2}
                ),
                ToolCall("call_2", "weather_showWeather", {"location": "Berlin"}),
            ],
        ),
        ToolMessage("Ordered 2 x Burger.", "call_1"),
        ToolMessage("The weather in Berlin is 18°C.", "call_2"),
        AssistantMessage("Done: 2 burgers are on their way and it is 18°C in Berlin."),
        UserMessage(
            [
                TextPart("What is in these pictures?"),
                ImagePart(url="https://example.com/cat.png"),
                ImagePart(data=PIXEL, media_type="image/png"),
            ]
        ),
        AssistantMessage(
            tool_calls=[ToolCall("call_3", "weather_showForecast", {"location": "Oslo"})]
        ),
        ToolMessage('{"error":"ValueError: days must be between 1 and 7"}', "call_3"),
    ]


# -- OpenAI ------------------------------------------------------------------------------------


def test_openai_shapes() -> None:
    raw = to_openai(
        [
            DeveloperMessage("Be brief.", name="ops"),
            UserMessage("hi", name="ann"),
            AssistantMessage(
                tool_calls=[ToolCall("c1", "weather_showWeather", {"location": "Rome"})]
            ),
            ToolMessage("21°C", "c1"),
        ]
    )
    assert raw == [
        {"role": "developer", "content": "Be brief.", "name": "ops"},
        {"role": "user", "content": "hi", "name": "ann"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {
                        "name": "weather_showWeather",
                        "arguments": '{"location": "Rome"}',
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "21°C"},
    ]


def test_openai_round_trips() -> None:
    messages = [
        *conversation(),
        DeveloperMessage("Prefer metric units.", name="ops"),
        UserMessage([ImagePart(url="https://example.com/a.jpg", detail="low")], name="ann"),
        AssistantMessage("ok", name="bot"),
    ]
    raw = to_openai(messages)
    assert from_openai(raw) == messages
    assert to_openai(from_openai(copy.deepcopy(raw))) == raw
    assert json.loads(json.dumps(raw)) == raw  # plain JSON
    inline = raw[6]["content"][2]
    assert inline == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}}


def test_openai_arguments_that_are_not_json_survive() -> None:
    raw = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c9", "type": "function", "function": {"name": "f", "arguments": '{"a": 1'}}
        ],
    }
    message = message_from_openai(raw)
    assert isinstance(message, AssistantMessage)
    assert (
        message.tool_calls[0].arguments == {} and message.tool_calls[0].raw_arguments == '{"a": 1'
    )
    assert to_openai([message]) == [raw]
    assert run_tool_calls(message, registry())[0].is_error  # answered, not raised


def test_openai_content_part_lists_of_text() -> None:
    parsed = from_openai(
        [
            {
                "role": "system",
                "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "kind."}],
            },
            {"role": "tool", "tool_call_id": "x", "content": [{"type": "text", "text": "42"}]},
        ]
    )
    assert parsed == [SystemMessage("Be kind."), ToolMessage("42", "x")]
    with pytest.raises(ValueError, match="role"):
        from_openai([{"role": "function", "content": "x"}])


# -- Anthropic ---------------------------------------------------------------------------------


def test_anthropic_shapes() -> None:
    system, raw = to_anthropic(conversation())
    assert system == "You are a helpful assistant."
    assert [m["role"] for m in raw] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert raw[1]["content"] == [
        {"type": "text", "text": "On it."},
        {
            "type": "tool_use",
            "id": "call_1",
            "name": "delivery_orderProduct",
            "input": {"productName": "Burger", "quantity": 2},
        },
        {
            "type": "tool_use",
            "id": "call_2",
            "name": "weather_showWeather",
            "input": {"location": "Berlin"},
        },
    ]
    # consecutive tool messages share one user message
    assert raw[2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "Ordered 2 x Burger."},
            {
                "type": "tool_result",
                "tool_use_id": "call_2",
                "content": "The weather in Berlin is 18°C.",
            },
        ],
    }
    assert raw[3] == {
        "role": "assistant",
        "content": "Done: 2 burgers are on their way and it is 18°C in Berlin.",
    }
    assert raw[4]["content"][1:] == [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
    ]


def test_anthropic_round_trips() -> None:
    messages = conversation()
    messages[-1] = ToolMessage("days must be between 1 and 7", "call_3", is_error=True)
    system, raw = to_anthropic(messages)
    assert raw[-1]["content"][0]["is_error"] is True
    assert from_anthropic(raw, system) == messages
    again_system, again = to_anthropic(from_anthropic(copy.deepcopy(raw), system))
    assert (again_system, again) == (system, raw)
    assert to_anthropic([UserMessage("hi")]) == (None, [{"role": "user", "content": "hi"}])


def test_anthropic_has_no_developer_role_and_one_system() -> None:
    system, raw = to_anthropic(
        [SystemMessage("Rule one."), UserMessage("hi"), DeveloperMessage("Rule two.")]
    )
    assert system == "Rule one.\n\nRule two." and raw == [{"role": "user", "content": "hi"}]
    blocks = [{"type": "text", "text": "Be kind."}, {"type": "text", "text": "Be brief."}]
    assert from_anthropic([], blocks) == [SystemMessage("Be kind.\nBe brief.")]


def test_anthropic_user_turn_mixing_results_and_text() -> None:
    raw = [
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "text", "text": "42"}],
                },
                {"type": "text", "text": "Now double it."},
            ],
        }
    ]
    assert from_anthropic(raw) == [
        ToolMessage("42", "t1"),
        UserMessage([TextPart("Now double it.")]),
    ]
    with pytest.raises(ValueError, match="thinking"):
        from_anthropic([{"role": "assistant", "content": [{"type": "thinking", "thinking": "hm"}]}])


def test_openai_to_anthropic_and_back() -> None:
    """A conversation written for OpenAI, sent to Anthropic, read back: the same messages."""
    openai_raw = to_openai(conversation())
    system, anthropic_raw = to_anthropic(from_openai(openai_raw))
    assert to_openai(from_anthropic(anthropic_raw, system)) == openai_raw


def test_image_parts_are_checked() -> None:
    with pytest.raises(ValueError):
        ImagePart()
    with pytest.raises(ValueError):
        ImagePart(url="https://example.com/x.png", data=PIXEL, media_type="image/png")
    with pytest.raises(ValueError):
        ImagePart(data=PIXEL)


# -- MessageList and extensions ----------------------------------------------------------------


def test_registry_extension_runs_at_serialization() -> None:
    found = registry()
    messages = MessageList()
    messages.add_extension(found)
    messages.add_message(UserMessage("What's the weather in Berlin for the next 3 days?"))
    rendered = messages.to_openai()
    assert rendered[0]["role"] == "developer"
    assert (
        "- delivery: Handles product delivery, orders, and shipping details."
        in rendered[0]["content"]
    )
    assert "- weather: Handles weather and forecasting services." in rendered[0]["content"]
    assert rendered[1] == {
        "role": "user",
        "content": "What's the weather in Berlin for the next 3 days?",
    }
    assert len(messages) == 1 and messages.count() == 1  # the list itself is unchanged
    assert messages.to_array() == rendered  # seed 001's toArray()
    system, raw = messages.to_anthropic()
    assert system is not None and "delivery" in system and len(raw) == 1
    assert MessageList([UserMessage("x")], extensions=[Registry()]).to_openai() == [
        {"role": "user", "content": "x"}
    ]  # an empty registry adds nothing
    with pytest.raises(TypeError):
        messages.add_extension(object())  # type: ignore[arg-type]


def test_custom_extensions_run_in_order() -> None:
    class Stamp:
        def __init__(self, text: str) -> None:
            self.text = text

        def extend(self, messages: MessageList) -> None:
            messages.add_message(UserMessage(self.text))

    messages = MessageList([UserMessage("a")]).add_extensions([Stamp("b"), Stamp("c")])
    messages.add_extension(RegistryExtension(registry()))
    rendered = messages.rendered()
    assert [type(m).__name__ for m in rendered] == [
        "DeveloperMessage",
        "UserMessage",
        "UserMessage",
        "UserMessage",
    ]
    assert [m.content for m in rendered][1:] == ["a", "b", "c"]
    assert list(messages) == [UserMessage("a")]
    assert MessageList.from_openai(messages.to_openai()).messages == list(rendered)


# -- running a turn's tool calls ---------------------------------------------------------------


def model_turn() -> AssistantMessage:
    return AssistantMessage(
        tool_calls=[
            ToolCall("c1", "delivery_orderProduct", {"productName": "Pizza", "quantity": 2}),
            ToolCall("c2", "delivery_orderProduct", {"productName": "Tea"}),
            ToolCall("c3", "delivery_cancelOrder", {}),
            ToolCall("c4", "weather_showForecast", {"location": "Oslo", "days": "many"}),
        ]
    )


def test_run_tool_calls_appends_one_answer_per_call() -> None:
    found = registry()
    messages = MessageList([UserMessage("Two pizzas, a tea and the forecast.")], extensions=[found])
    messages.add(model_turn())
    answers = run_tool_calls(messages, found)
    assert list(messages)[-4:] == answers
    assert [a.tool_call_id for a in answers] == ["c1", "c2", "c3", "c4"]
    assert answers[0] == ToolMessage("Ordered 2 x Pizza. It will arrive in 30 minutes.", "c1")
    assert [a.is_error for a in answers] == [False, True, True, True]
    assert "'Tea' is not available" in json.loads(answers[1].content)["error"]
    assert "delivery_cancelOrder" in json.loads(answers[2].content)["error"]
    assert "days" in json.loads(answers[3].content)["error"]
    assert run_tool_calls(messages, found) == []  # every call is answered already
    _, raw = messages.to_anthropic()
    assert [b["tool_use_id"] for b in raw[-1]["content"]] == ["c1", "c2", "c3", "c4"]


def test_run_tool_calls_on_a_plain_list_and_json_results() -> None:
    found = Registry()

    def lookup(city: str) -> dict[str, Any]:
        """Look up a city."""
        return {"city": city, "population": 3_600_000}

    found.register(lookup, namespace="geo", description="Places.")
    messages: list[Any] = [
        AssistantMessage(tool_calls=[ToolCall("g1", "geo_lookup", {"city": "Berlin"})])
    ]
    (answer,) = run_tool_calls(messages, found)
    assert messages[-1] is answer
    assert json.loads(answer.content) == {"city": "Berlin", "population": 3600000}
    assert run_tool_calls([UserMessage("no assistant yet")], found) == []


@pytest.mark.anyio
async def test_arun_tool_calls() -> None:
    found = registry()
    messages = MessageList([model_turn()])
    answers = await arun_tool_calls(messages, found)
    assert [a.is_error for a in answers] == [False, True, True, True]
    assert len(messages) == 5
