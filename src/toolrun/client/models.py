"""The values the SDK returns: tools in a :class:`FunctionList`, call results, jobs, events,
search hits and ``/execute`` answers, each parsed from the server's JSON."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from toolrun.execution.jobs import JobStatus
from toolrun.registry.formats import from_seed
from toolrun.registry.tool import Tool
from toolrun.response import Response, TextItem

__all__ = [
    "ExecuteResult",
    "FunctionList",
    "JobEvent",
    "JobInfo",
    "JobStatus",
    "Result",
    "SearchHit",
]


@dataclass(frozen=True)
class Result(Response):
    """A :class:`~toolrun.response.Response` whose structured value also reads like a dict,
    as seed 004 reads it: ``client.invoke("summarize", args)["summary"]``."""

    def __getitem__(self, key: str) -> Any:
        if self.structured is None:
            raise KeyError(key)
        return self.structured[key]

    def get(self, key: str, default: Any = None) -> Any:
        return default if self.structured is None else self.structured.get(key, default)


def result_from(data: Any) -> Result:
    """A :class:`Result` from a ``CallToolResult`` body."""
    base = Response.from_dict(data if isinstance(data, Mapping) else {})
    return Result(base.is_error, base.content, base.structured)


class FunctionList(Sequence[Tool]):
    """Tools in the order the server gave them; indexed by position or by id or name
    (``functions["weather_lookup"]``: the first listed with that name)."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self._tools = list(tools)

    @overload
    def __getitem__(self, key: int) -> Tool: ...
    @overload
    def __getitem__(self, key: str) -> Tool: ...
    @overload
    def __getitem__(self, key: slice) -> FunctionList: ...
    def __getitem__(self, key: int | str | slice) -> Tool | FunctionList:
        if isinstance(key, slice):
            return FunctionList(self._tools[key])
        if isinstance(key, int):
            return self._tools[key]
        found = self.find(key)
        if found is None:
            raise KeyError(key)
        return found

    def find(self, ref: str) -> Tool | None:
        """The tool with this id, else the first with this name, else None."""
        for tool in self._tools:
            if tool.id == ref:
                return tool
        name = ref.partition(":")[0]
        return next((t for t in self._tools if t.name == name), None)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            return self.find(item) is not None
        return item in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FunctionList):
            return self._tools == other._tools
        return isinstance(other, list) and self._tools == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FunctionList({[t.id for t in self._tools]!r})"

    def ids(self) -> list[str]:
        return [t.id for t in self._tools]


@dataclass(frozen=True)
class JobInfo:
    """A job as ``GET /jobs/{uuid}`` shows it (``raw`` has every field)."""

    uuid: str
    tool_id: str
    status: JobStatus
    arguments: dict[str, Any]
    result: Result | None
    error: str | None
    attempts: int
    progress: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobInfo:
        result = data.get("result")
        return cls(
            uuid=str(data["uuid"]),
            tool_id=str(data.get("tool_id", "")),
            status=JobStatus(data["status"]),
            arguments=dict(data.get("arguments") or {}),
            result=result_from(result) if isinstance(result, Mapping) else None,
            error=data.get("error"),
            attempts=int(data.get("attempts") or 0),
            progress=data.get("progress"),
            raw=dict(data),
        )

    @property
    def finished(self) -> bool:
        return self.status.final

    def response(self) -> Result:
        """The job's answer: its result, or an error result saying why it has none."""
        if self.result is not None:
            return self.result
        return Result(True, (TextItem(self.error or f"job {self.status.value}"),))


@dataclass(frozen=True)
class JobEvent:
    """One message of ``/jobs/{uuid}/events``: ``snapshot``, ``running``, ``progress``,
    ``retrying`` or ``finished`` (see docs/jobs.md); ``data`` is the whole message."""

    event: str
    uuid: str
    data: dict[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobEvent:
        return cls(str(data.get("event", "")), str(data.get("uuid", "")), dict(data))

    @property
    def progress(self) -> dict[str, Any] | None:
        """``{"fraction", "message", "data", "at"}`` of a ``progress`` event."""
        value = self.data.get("progress")
        return value if isinstance(value, dict) else None

    @property
    def job(self) -> JobInfo | None:
        """The job of a ``snapshot`` or ``finished`` event."""
        value = self.data.get("job")
        return JobInfo.from_dict(value) if isinstance(value, Mapping) else None


@dataclass(frozen=True)
class SearchHit:
    """One ranked tool of ``search``: the tool, the fused score and its parts."""

    tool: Tool
    score: float
    scores: dict[str, float]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchHit:
        return cls(
            from_seed(data["tool"], "tool"),
            float(data["score"]),
            {k: float(v) for k, v in (data.get("scores") or {}).items()},
        )


@dataclass(frozen=True)
class ExecuteResult:
    """The answer of ``/execute``: ``status`` is ``executed``, ``failed``, ``planned``,
    ``missing_arguments`` or ``no_fit``; ``result`` is set when a tool ran."""

    status: str
    session_id: str
    function: str | None
    arguments: dict[str, Any] | None
    missing: list[str]
    code: str | None
    result: Result | None
    message: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecuteResult:
        result = data.get("execution_result")
        return cls(
            status=str(data["status"]),
            session_id=str(data.get("session_id", "")),
            function=data.get("function"),
            arguments=data.get("arguments"),
            missing=list(data.get("missing") or []),
            code=data.get("code"),
            result=result_from(result) if isinstance(result, Mapping) else None,
            message=data.get("message"),
            raw=dict(data),
        )
