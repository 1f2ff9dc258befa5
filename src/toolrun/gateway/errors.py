"""Errors of the gateway, in two families kept apart::

    toolrun.errors.CallError              what the *model* got wrong (told to it in a repair round)
    ├── ParseError                        a reply whose tool calls cannot be read
    └── UnknownTool                       a call of a function that was not offered

    toolrun.errors.ToolrunError
    └── APIError                          what the *client* is answered, in OpenAI's error shape
        ├── InvalidRequest        400     invalid_request_error (bad body, n > 1, a tool_choice
        │                                 naming no tool, a model that never called a tool ...)
        ├── AuthenticationFailed  401     invalid_api_key
        ├── ModelNotFound         404     model_not_found
        ├── RateLimited           429     rate_limit_exceeded (with Retry-After)
        └── UpstreamFailed        502     the model server failed or answered nonsense

:meth:`APIError.to_openai` is the one body of every ``/v1`` error:
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

from typing import Any

from toolrun.errors import CallError, ToolrunError


class ParseError(CallError):
    """A reply whose tool calls cannot be read; the message names the line and the problem.
    ``code`` is the offending tool code when that is a loop, a condition or another statement
    only a run of the code could resolve (see :mod:`toolrun.gateway.record`)."""

    status_code = 422
    type = "invalid_tool_call"

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        detail: Any = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, detail=detail)
        self.line = line
        self.code = code


class UnknownTool(CallError):
    """A reply called a function that was not among the offered tools."""

    status_code = 422
    type = "unknown_tool"


class APIError(ToolrunError):
    """An error answered to the client in OpenAI's shape."""

    status_code = 400
    type = "invalid_request_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        detail: Any = None,
    ) -> None:
        super().__init__(message, detail=detail)
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def to_openai(self) -> dict[str, Any]:
        """``{"error": {"message", "type", "param", "code"}}``."""
        error = {"message": self.message, "type": self.type, "param": self.param}
        return {"error": {**error, "code": self.code}}


class InvalidRequest(APIError):
    status_code = 400
    type = "invalid_request_error"


class AuthenticationFailed(APIError):
    status_code = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class ModelNotFound(APIError):
    status_code = 404
    type = "invalid_request_error"
    code = "model_not_found"


class RateLimited(APIError):
    status_code = 429
    type = "requests"
    code = "rate_limit_exceeded"


class UpstreamFailed(APIError):
    status_code = 502
    type = "upstream_error"
    code = "upstream_error"
