"""The Python SDK of a toolrun server, or of a :class:`~toolrun.registry.registry.Registry` in
this process::

    from toolrun.client import Client

    with Client("http://127.0.0.1:8000") as client:
        result = client.invoke("weather_lookup", {"city": "Delhi"})
        job = client.submit("delivery_orderProduct", {"productName": "Pizza", "quantity": 2})
        print(result["temperature"], job.result(timeout=30).text)

It needs httpx and websockets, not the server's dependencies (FastAPI, SQLAlchemy, uvicorn).
"""

from __future__ import annotations

from toolrun.client.aio import AsyncClient, AsyncJobHandle
from toolrun.client.errors import (
    ApiError,
    BadRequest,
    ClientError,
    ClientTimeout,
    Conflict,
    Forbidden,
    NotFound,
    NotSupported,
    RateLimited,
    ServerError,
    TransportError,
    Unavailable,
    ValidationFailed,
)
from toolrun.client.models import (
    ExecuteResult,
    FunctionList,
    JobEvent,
    JobInfo,
    JobStatus,
    Result,
    SearchHit,
)
from toolrun.client.retry import Retry
from toolrun.client.sync import Client, JobHandle

__all__ = [
    "ApiError",
    "AsyncClient",
    "AsyncJobHandle",
    "BadRequest",
    "Client",
    "ClientError",
    "ClientTimeout",
    "Conflict",
    "ExecuteResult",
    "Forbidden",
    "FunctionList",
    "JobEvent",
    "JobHandle",
    "JobInfo",
    "JobStatus",
    "NotFound",
    "NotSupported",
    "RateLimited",
    "Result",
    "Retry",
    "SearchHit",
    "ServerError",
    "TransportError",
    "Unavailable",
    "ValidationFailed",
]
