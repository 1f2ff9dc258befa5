"""The one exception tree of toolrun.

::

    ToolrunError                       every error toolrun raises on purpose
    ├── DefinitionError                mistakes of the person defining or managing tools  (4xx)
    │   ├── InvalidDefinition          a tool, schema, runtime or id that cannot be accepted (422)
    │   ├── ToolNotFound               no tool answers to that id or reference             (404)
    │   ├── ToolAlreadyExists          creating an id that is taken                        (409)
    │   ├── QueryError                 a malformed Mongo-style filter                      (400)
    │   ├── NotPermitted               a change only the operator may make (trust, ...)     (403)
    │   ├── ConcurrentUpdate           the tool changed between read and write             (409)
    │   └── NotFound                   any other missing record (a job, ...)               (404)
    ├── CallError                      failures the model/caller should be told about      (4xx)
    │   ├── ArgumentsInvalid           arguments violating the input schema, every violation listed
    │   ├── NotExecutable              the tool has no runtime, or its runtime cannot run here
    │   ├── JobNotFinished             asking a job's result before it has one              (409)
    │   ├── JobAlreadyFinished         cancelling a job that has already ended              (409)
    │   ├── IdempotencyKeyReused       an idempotency key sent again with another request   (409)
    │   └── NotDeadLettered            retrying a job that is not on the dead-letter list   (409)
    └── InfrastructureError            the platform itself failed                         (5xx)
        ├── StoreError                 the database
        ├── QueueFull                  the executor's bounded queue is full                (503)
        └── UpstreamError              an external registry or HTTP endpoint misbehaved     (502)

A tool that raises is *not* an error of this tree: its exception becomes an ``isError``
:class:`toolrun.response.Response`, never a protocol error.
"""

from __future__ import annotations

from typing import Any


class ToolrunError(Exception):
    """Base of every error toolrun raises on purpose; carries its wire shape."""

    status_code: int = 500
    type: str = "internal_error"

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def to_dict(self) -> dict[str, Any]:
        """The one JSON error body: ``{"error": {"type", "message", "detail"}}``."""
        return {"error": {"type": self.type, "message": self.message, "detail": self.detail}}


class DefinitionError(ToolrunError):
    status_code = 400
    type = "definition_error"


class InvalidDefinition(DefinitionError):
    status_code = 422
    type = "invalid_definition"


class ToolNotFound(DefinitionError):
    status_code = 404
    type = "tool_not_found"


class ToolAlreadyExists(DefinitionError):
    status_code = 409
    type = "tool_exists"


class QueryError(DefinitionError):
    status_code = 400
    type = "invalid_query"


class NotPermitted(DefinitionError):
    status_code = 403
    type = "not_permitted"


class ConcurrentUpdate(DefinitionError):
    status_code = 409
    type = "concurrent_update"


class NotFound(DefinitionError):
    status_code = 404
    type = "not_found"


class CallError(ToolrunError):
    status_code = 400
    type = "call_error"


class ArgumentsInvalid(CallError):
    status_code = 422
    type = "invalid_arguments"


class NotExecutable(CallError):
    status_code = 422
    type = "not_executable"


class JobNotFinished(CallError):
    status_code = 409
    type = "job_not_finished"


class JobAlreadyFinished(CallError):
    status_code = 409
    type = "job_finished"


class IdempotencyKeyReused(CallError):
    status_code = 409
    type = "idempotency_key_reused"


class NotDeadLettered(CallError):
    status_code = 409
    type = "not_dead_lettered"


class InfrastructureError(ToolrunError):
    status_code = 503
    type = "infrastructure_error"


class StoreError(InfrastructureError):
    type = "store_error"


class QueueFull(InfrastructureError):
    type = "queue_full"


class UpstreamError(InfrastructureError):
    status_code = 502
    type = "upstream_error"
