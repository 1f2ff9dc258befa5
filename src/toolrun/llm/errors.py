"""Errors of an LLM backend, all :class:`toolrun.errors.UpstreamError` (502 if one escapes)::

    LLMError              the model server could not give a usable answer
    ├── LLMUnavailable    unreachable, timed out or overloaded after every retry
    ├── LLMRejected       refused the request (HTTP 4xx other than 408/409/429): not retried
    └── LLMBadResponse    answered 2xx with something that is not a chat completion

Messages name the server and what to check; they never contain the API key.
"""

from __future__ import annotations

from typing import Any

from toolrun.errors import UpstreamError


class LLMError(UpstreamError):
    type = "llm_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        upstream_message: str | None = None,
        detail: Any = None,
    ) -> None:
        if detail is None and (status is not None or upstream_message is not None):
            detail = {"status": status, "upstream_message": upstream_message}
        super().__init__(message, detail=detail)
        self.status = status
        self.upstream_message = upstream_message


class LLMUnavailable(LLMError):
    status_code = 503
    type = "llm_unavailable"


class LLMRejected(LLMError):
    type = "llm_rejected"


class LLMBadResponse(LLMError):
    type = "llm_bad_response"
