"""Conversations for tool calling (seed 001's messages), in OpenAI's and Anthropic's formats::

messages = MessageList([UserMessage("Order 2 pizzas")], extensions=[registry])
reply = model(messages.to_openai(), tools=registry.get_function_definitions())
messages.add(message_from_openai(reply))     # an AssistantMessage with tool calls
run_tool_calls(messages, registry)            # appends one ToolMessage per call
"""

from __future__ import annotations

from toolrun.messages.anthropic import from_anthropic, to_anthropic
from toolrun.messages.message_list import (
    MessageList,
    MessageListExtension,
    RegistryExtension,
)
from toolrun.messages.openai import from_openai, message_from_openai, to_openai
from toolrun.messages.tool_calls import arun_tool_calls, run_tool_calls, tool_content
from toolrun.messages.types import (
    AnyMessage,
    AssistantMessage,
    ContentPart,
    DeveloperMessage,
    ImagePart,
    Message,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    UserMessage,
)

__all__ = [
    "AnyMessage",
    "AssistantMessage",
    "ContentPart",
    "DeveloperMessage",
    "ImagePart",
    "Message",
    "MessageList",
    "MessageListExtension",
    "RegistryExtension",
    "SystemMessage",
    "TextPart",
    "ToolCall",
    "ToolMessage",
    "UserMessage",
    "arun_tool_calls",
    "from_anthropic",
    "from_openai",
    "message_from_openai",
    "run_tool_calls",
    "to_anthropic",
    "to_openai",
    "tool_content",
]
