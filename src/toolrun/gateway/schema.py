"""The ``POST /v1/chat/completions`` request, as OpenAI's API reference describes it.

:func:`parse_request` validates a decoded JSON body into a :class:`ChatRequest` or raises
:class:`~toolrun.gateway.errors.InvalidRequest` with OpenAI's wording, ``param`` (the path,
``messages[0].content``) and ``code`` (``missing_required_parameter``, ``invalid_type``,
``invalid_value``). Fields OpenAI has but the gateway does not act on (``logprobs``,
``metadata``, ``store``, vendor options such as ``top_k``) are accepted and passed on to the
upstream as sent; ``toolrun_tools`` (registry tools the gateway runs itself) is toolrun's own.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from toolrun.gateway.errors import InvalidRequest

_MODEL = ConfigDict(extra="allow")


class TextPart(BaseModel):
    model_config = _MODEL
    type: Literal["text"]
    text: str


class ContentPart(BaseModel):
    """Any content part (text, image_url, input_audio, file); only ``type`` is checked."""

    model_config = _MODEL
    type: str = Field(min_length=1)


class FunctionCall(BaseModel):
    model_config = _MODEL
    name: str = Field(min_length=1)
    arguments: str


class ToolCallParam(BaseModel):
    model_config = _MODEL
    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(BaseModel):
    model_config = _MODEL
    role: Literal["system", "developer"]
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(BaseModel):
    model_config = _MODEL
    role: Literal["user"]
    content: str | list[ContentPart]
    name: str | None = None


class AssistantMessage(BaseModel):
    model_config = _MODEL
    role: Literal["assistant"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCallParam] | None = None
    name: str | None = None
    refusal: str | None = None


class ToolMessage(BaseModel):
    model_config = _MODEL
    role: Literal["tool"]
    content: str | list[TextPart]
    tool_call_id: str = Field(min_length=1)


class FunctionMessage(BaseModel):
    """The deprecated ``function`` role (a result of the legacy ``functions`` API)."""

    model_config = _MODEL
    role: Literal["function"]
    content: str | None
    name: str


def _role(value: Any) -> str | None:
    role = value.get("role") if isinstance(value, dict) else getattr(value, "role", None)
    return "system" if role == "developer" else role


Message = Annotated[
    Annotated[SystemMessage, Tag("system")]
    | Annotated[UserMessage, Tag("user")]
    | Annotated[AssistantMessage, Tag("assistant")]
    | Annotated[ToolMessage, Tag("tool")]
    | Annotated[FunctionMessage, Tag("function")],
    Discriminator(_role),
]


class FunctionDefinition(BaseModel):
    model_config = _MODEL
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolParam(BaseModel):
    model_config = _MODEL
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(BaseModel):
    name: str = Field(min_length=1)


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(BaseModel):
    model_config = _MODEL
    include_usage: bool | None = None


class ChatRequest(BaseModel):
    """The request body; unknown fields are kept (``model_extra``) and passed on."""

    model_config = _MODEL

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    tools: list[ToolParam] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int | None = Field(None, ge=1, le=128)
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    response_format: dict[str, Any] | None = None
    toolrun_tools: list[str] | None = Field(None, max_length=64)

    @property
    def forced(self) -> str | None:
        """The function ``tool_choice`` names, if it names one."""
        choice = self.tool_choice
        return choice.function.name if isinstance(choice, NamedToolChoice) else None


# Fields of the request the gateway handles itself; everything else goes to the upstream.
OWN_FIELDS = frozenset(
    {"model", "messages", "tools", "tool_choice", "parallel_tool_calls", "stream"}
    | {"stream_options", "n", "toolrun_tools"}
)


def parse_request(body: Any) -> ChatRequest:
    """``body`` validated; :class:`InvalidRequest` in OpenAI's words otherwise."""
    if not isinstance(body, dict):
        raise InvalidRequest(
            "The request body must be a JSON object.", code="invalid_type", param=None
        )
    try:
        request = ChatRequest.model_validate(body)
    except ValidationError as exc:
        raise _invalid(exc) from None
    if request.n not in (None, 1):
        raise InvalidRequest(
            "n > 1 is not supported by this gateway: ask for one choice per request.",
            param="n",
            code="invalid_value",
        )
    names = [tool.function.name for tool in request.tools or []]
    if len(set(names)) != len(names):
        raise InvalidRequest(
            "Duplicate function names in 'tools'.", param="tools", code="invalid_value"
        )
    offered = request.tools or request.toolrun_tools
    if request.tool_choice not in (None, "none", "auto") and not offered:
        raise InvalidRequest(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
            "are specified.",
            param="tool_choice",
            code="invalid_value",
        )
    if request.forced is not None and request.forced not in names:
        raise InvalidRequest(
            f"Invalid value for 'tool_choice': no function named {request.forced!r} in 'tools'.",
            param="tool_choice",
            code="invalid_value",
        )
    if request.stream_options is not None and not request.stream:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    return request


def _invalid(exc: ValidationError) -> InvalidRequest:
    error = _main_error(exc.errors())
    param = _path(error["loc"])
    kind = error["type"]
    if kind == "missing":
        message = f"Missing required parameter: '{param}'."
        code = "missing_required_parameter"
    elif kind == "union_tag_invalid" or kind == "union_tag_not_found":
        param = _path(error["loc"]) + ".role"
        message = (
            f"Invalid value for '{param}': expected one of 'system', 'developer', 'user', "
            "'assistant', 'tool' or 'function'."
        )
        code = "invalid_value"
    else:
        expected = str(error["msg"])
        code = "invalid_type" if kind.endswith("_type") or "type" in kind else "invalid_value"
        message = f"Invalid value for '{param}': {expected[:1].lower()}{expected[1:]}."
    return InvalidRequest(message, param=param or None, code=code)


def _main_error(errors: list[Any]) -> Any:
    """The error to report: the shortest location (a union reports every branch)."""
    return min(errors, key=lambda e: len([p for p in e["loc"] if isinstance(p, int | str)]))


def _path(loc: tuple[Any, ...]) -> str:
    """``messages[0].content`` from pydantic's location, without union branch names."""
    text = ""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            text += f"[{part}]"
        elif index >= 2 and loc[index - 2] == "messages" and isinstance(loc[index - 1], int):
            continue  # the role tag of a message
        elif isinstance(part, str) and _FIELD.match(part) and part not in _BRANCHES:
            text += ("." if text else "") + part
    return text


_FIELD = re.compile(r"^[a-z_][a-z0-9_]*$")
_BRANCHES = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})
