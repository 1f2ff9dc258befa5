"""Shared pieces of the gateway tests: tools, realistic model replies, a served gateway.

The gateway runs in a real toolrun server (uvicorn in a thread) whose upstreams are one
scripted OpenAI-compatible server on loopback (:mod:`tests.llm_server`), mapped under three
public names: ``emu`` (emulate), ``nat`` (native) and ``auto`` (auto).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

from tests.llm_server import Reply, ScriptedLLMServer, completion, sse
from tests.test_client import threaded_server
from toolrun.config import Settings

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
SEARCH = {
    "type": "function",
    "function": {
        "name": "search_web",
        "description": "Search the web.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "max_results": {"type": "integer", "minimum": 1},
            },
            "required": ["query"],
        },
    },
}
TOOLS = [WEATHER, SEARCH]
USER = [{"role": "user", "content": "What's the weather in Paris?"}]

# Realistic replies of models without tool support, messy ones included.
PROSE_AND_FENCE = (
    "I'll look up the current weather in Paris for you.\n\n"
    '```python\nget_weather(city="Paris", unit="celsius")\n```'
)
THINK_PARALLEL = (
    "<think>\nThe user wants two cities. I can call get_weather twice, they do not depend on "
    'each other.\n</think>\n\n```python\nget_weather(city="Paris")\nget_weather("Tokyo", '
    'unit="fahrenheit")\n```'
)
JSON_LIKE = '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}'
HERMES = (
    '<tool_call>\n{"name": "search_web", "arguments": {"query": "Paris weather"}}\n</tool_call>'
)
BAD_ARGUMENT = '```python\nget_weather(city="Paris", unit="kelvin")\n```'
FIXED = '```python\nget_weather(city="Paris", unit="celsius")\n```'
PLAIN = "The weather in Paris is sunny, 21 degrees."


def text_reply(content: str, **usage: int) -> Reply:
    body = completion(content)
    body["usage"] = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, **usage}
    return Reply(json=body)


def sse_reply(*chunks: dict[str, Any], done: bool = True) -> Reply:
    return Reply(stream=sse(*chunks, done=done))


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    body = {"id": "up", "object": "chat.completion.chunk", "created": 0, "model": "up",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
    body.update(extra)
    return body


def model_map(path: Path, url: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "models": [
                    {"name": "emu", "base_url": url, "model": "m-emu", "mode": "emulate"},
                    {"name": "nat", "base_url": url, "model": "m-nat", "mode": "native"},
                    {"name": "auto", "base_url": url, "model": "m-auto", "mode": "auto"},
                    {"name": "auto2", "base_url": url, "model": "m-auto2", "mode": "auto"},
                ]
            }
        )
    )
    return path


@dataclass
class Served:
    url: str  # the toolrun server
    llm: ScriptedLLMServer  # the scripted upstream
    data_dir: Path

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    @contextmanager
    def openai_client(self) -> Iterator[openai.OpenAI]:
        """The official client on the gateway, for one test: the upstream's record starts
        empty, and every reply the test scripted must have been used by its end."""
        self.llm.requests.clear()
        with openai.OpenAI(base_url=self.v1, api_key="unused", max_retries=0) as made:
            yield made
        assert self.llm.pending == 0, "a scripted reply was not used"

    def sent(self, index: int = -1) -> dict[str, Any]:
        """The body the gateway sent upstream (the last one by default)."""
        return dict(self.llm.requests[index].json())


@contextmanager
def served_gateway(tmp: Path, **settings: Any) -> Iterator[Served]:
    with ScriptedLLMServer() as llm:
        config = model_map(tmp / "models.json", llm.url)
        values: dict[str, Any] = {
            "data_dir": tmp / "data",
            "workers": 1,
            "retrieval_embedder": "none",
            "gateway_config": config,
            "llm_max_retries": 0,
            **settings,
        }
        with threaded_server(Settings(**values)) as url:
            yield Served(url, llm, values["data_dir"])
