"""LLM backends: the OpenAI chat-completions wire format (:mod:`.wire`), an HTTP client for
any server that speaks it (:mod:`.client`) and a scripted fake for tests (:mod:`.fake`)."""

from toolrun.llm.base import ChatBackend
from toolrun.llm.client import LLMClient, RetryPolicy
from toolrun.llm.errors import LLMBadResponse, LLMError, LLMRejected, LLMUnavailable
from toolrun.llm.fake import FakeLLM
from toolrun.llm.wire import AssistantMessage, ToolCall

__all__ = [
    "AssistantMessage",
    "ChatBackend",
    "FakeLLM",
    "LLMBadResponse",
    "LLMClient",
    "LLMError",
    "LLMRejected",
    "LLMUnavailable",
    "RetryPolicy",
    "ToolCall",
]
