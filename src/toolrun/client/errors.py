"""What the SDK raises: the server's error body, typed by its HTTP status.

::

    ToolrunError                      (toolrun.errors)
    └── ClientError                   everything toolrun.client raises
        ├── ApiError                  the server answered {"error": {"type", "message", "detail"}}
        │   ├── BadRequest            400  invalid_query, call_error, bad_request
        │   ├── Forbidden             403  not_permitted, forbidden
        │   ├── NotFound              404  tool_not_found, not_found
        │   ├── Conflict              409  tool_exists, job_finished, idempotency_key_reused, ...
        │   ├── ValidationFailed      422  invalid_arguments, invalid_definition, invalid_request
        │   ├── RateLimited           429
        │   └── ServerError           5xx  internal_error
        │       ├── NotSupported      501  a call the in-process backend cannot make (execute)
        │       └── Unavailable       502, 503, 504  queue_full, upstream_error, store_error
        └── TransportError            no answer at all (refused, reset), after the retries
            └── ClientTimeout         a request or a wait took longer than allowed (TimeoutError)

A tool that fails is not an error here: ``invoke`` returns its ``isError`` Response.
"""

from __future__ import annotations

import json
from typing import Any

from toolrun.errors import ToolrunError


class ClientError(ToolrunError):
    """Base of every error of :mod:`toolrun.client`."""

    type = "client_error"


class ApiError(ClientError):
    """An error answer of the server. ``status`` is its HTTP status, ``type``, ``message`` and
    ``detail`` are its error body's fields (``to_dict()`` gives the body back)."""

    def __init__(self, status: int, type: str, message: str, detail: Any = None) -> None:
        super().__init__(message, detail=detail)
        self.status = self.status_code = status
        self.type = type

    def __str__(self) -> str:
        return f"{self.status} {self.type}: {self.message}"


class BadRequest(ApiError):
    """400: a malformed filter, idempotency key or request."""


class Forbidden(ApiError):
    """403: a change only the server's operator may make."""


class NotFound(ApiError):
    """404: no tool, job or session by that id."""


class Conflict(ApiError):
    """409: the id is taken, the job has already ended, the key names another request."""


class ValidationFailed(ApiError):
    """422: arguments or a definition that break their schema (``detail`` lists why)."""


class RateLimited(ApiError):
    """429: too many requests."""


class ServerError(ApiError):
    """5xx: the server failed."""


class NotSupported(ServerError):
    """501: the backend cannot make this call (``execute`` in-process)."""


class Unavailable(ServerError):
    """502, 503, 504: the server or what it depends on is down or full; retried first."""


class TransportError(ClientError):
    """No answer from the server (connection refused or reset), after the retries."""

    type = "transport_error"


class ClientTimeout(TransportError, TimeoutError):
    """A request, or the wait for a job's result, took longer than allowed."""

    type = "timeout"


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: ValidationFailed,
    429: RateLimited,
    501: NotSupported,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}


def error_class(status: int) -> type[ApiError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else ApiError


def status_of(type_: str) -> int:
    """The HTTP status the server gives an error of this type (500 if unknown): for error
    bodies that arrive without one, over the WebSocket."""
    pending: list[type[ToolrunError]] = [ToolrunError]
    while pending:
        cls = pending.pop()
        if cls.__module__ == ToolrunError.__module__ and cls.type == type_:
            return cls.status_code
        pending.extend(cls.__subclasses__())
    return 500


def from_body(status: int, body: bytes | str | Any) -> ApiError:
    """The typed error for an answer: its error body when it has one, else its text."""
    data = body
    if isinstance(body, bytes | str):
        try:
            data = json.loads(body or b"null")
        except ValueError:
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            return error_class(status)(status, "http_error", text[:500] or f"HTTP {status}")
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        kind = error.get("type")
        kind = kind if isinstance(kind, str) else "http_error"
        return error_class(status)(status, kind, error["message"], error.get("detail"))
    return error_class(status)(status, "http_error", f"HTTP {status}", data)
