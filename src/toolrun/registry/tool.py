"""The Tool value: everything toolrun knows about one callable function.

Every other shape (seed-002 ``OrgTools``/``OrgFunctions``, Open Functions definitions, OpenAI
``tools[]`` entries, MCP tools) is a view of this value produced in :mod:`.formats`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from toolrun.errors import InvalidDefinition
from toolrun.registry.ids import make_id, validate_name, validate_version
from toolrun.registry.regex import check_patterns
from toolrun.registry.runtimes import Runtime

EMPTY_OBJECT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
Isolation = Literal["inline", "process", "sandbox"]
Network = Literal["none", "loopback"]


class RetryPolicy(BaseModel):
    """Retries of a failed attempt (an error result, a timeout or a crashed worker), with
    exponential backoff: attempt ``n`` waits ``min(backoff_s * factor**(n-1), backoff_max_s)``.
    Delivery is at-least-once, so only tools that are safe to repeat should retry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=1, ge=1, le=20, description="1: no retry.")
    backoff_s: float = Field(default=1.0, ge=0, le=3600)
    backoff_factor: float = Field(default=2.0, ge=1, le=10)
    backoff_max_s: float = Field(default=60.0, ge=0, le=86400)

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (2 is the first retry)."""
        if attempt <= 1:
            return 0.0
        return float(min(self.backoff_s * self.backoff_factor ** (attempt - 2), self.backoff_max_s))


class RateLimit(BaseModel):
    """At most ``calls`` starts of the tool per ``per_s`` seconds (a token bucket)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    calls: int = Field(ge=1, le=1_000_000)
    per_s: float = Field(gt=0, le=86400)


class ExecutionPolicy(BaseModel):
    """Limits of a call and where it runs.

    ``isolation``: ``inline`` marks a tool *trusted* (it may run inside the API process, the
    fast path); ``process`` runs it in a worker process; ``sandbox`` runs it in a bubblewrap
    sandbox with seccomp, Landlock, rlimits and a cgroup (see ``toolrun.sandbox``). ``None``
    means the default of the tool's runtime: ``sandbox`` for ``code``, ``process`` otherwise
    (the API stores ``sandbox`` explicitly for command tools registered over the network).

    ``cpu_s``, ``memory_mb``, ``output_bytes`` and ``network`` apply in the sandbox; ``None``
    takes the server's sandbox defaults. ``env`` lists environment variables passed through
    from the server's environment; ``secrets`` names settings secrets injected as environment
    variables (``TOOLRUN_SECRETS__NAME`` becomes ``NAME``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float | None = Field(default=None, gt=0, description="None: the server default.")
    isolation: Isolation | None = None
    cpu_s: float | None = Field(default=None, gt=0, le=86400)
    memory_mb: int | None = Field(default=None, ge=16, le=1 << 20)
    output_bytes: int | None = Field(default=None, ge=1024, le=1 << 30)
    network: Network = "none"
    env: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = Field(
        default_factory=list, max_length=64
    )
    secrets: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = Field(
        default_factory=list, max_length=64
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    concurrency: int | None = Field(default=None, ge=1, le=10_000, description="Running at once.")
    rate_limit: RateLimit | None = None
    max_age_s: float | None = Field(
        default=None, gt=0, description="A job still queued after this long is dead-lettered."
    )

    @property
    def trusted(self) -> bool:
        return self.isolation == "inline"


class Tool(BaseModel):
    """One tool. Its id is ``name`` or ``name:version``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str | None = None
    namespace: str | None = Field(default=None, max_length=128)
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    input_schema: dict[str, Any] = Field(default_factory=lambda: dict(EMPTY_OBJECT_SCHEMA))
    output_schema: dict[str, Any] | None = None
    default_params: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    runtime: Runtime | None = None
    policy: ExecutionPolicy = Field(default_factory=ExecutionPolicy)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return validate_name(value)

    @field_validator("version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        return validate_version(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(t for t in value))

    @field_validator("input_schema", "output_schema")
    @classmethod
    def _schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        try:
            jsonschema.Draft202012Validator.check_schema(value)
        except jsonschema.SchemaError as exc:
            path = "/".join(str(p) for p in exc.absolute_path) or "(root)"
            raise ValueError(f"not a valid JSON Schema at {path}: {exc.message}") from None
        _check_refs(value, value)
        check_patterns(value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        where = find_nul(data, "")
        if where is not None:
            raise ValueError(
                f"{where or 'a value'} holds the character U+0000, which cannot be stored"
            )
        return data

    @model_validator(mode="after")
    def _input_is_object(self) -> Tool:
        kind = self.input_schema.get("type")
        if kind not in (None, "object"):
            raise ValueError("input_schema must describe an object (type: object)")
        return self

    @model_validator(mode="after")
    def _runtime_fits_isolation(self) -> Tool:
        kind = self.runtime.kind if self.runtime is not None else None
        chosen = self.policy.isolation
        if kind == "code" and chosen not in (None, "sandbox"):
            raise ValueError(
                f"a code runtime runs in the sandbox tier only, not isolation {chosen!r}"
            )
        if kind == "python" and chosen == "sandbox":
            raise ValueError(
                "a python runtime imports code from the server's environment, which the "
                "sandbox does not mount; use a code runtime (source stored with the tool) "
                "for sandboxed Python"
            )
        return self

    @property
    def id(self) -> str:
        return make_id(self.name, self.version)

    @property
    def timeout_s(self) -> float | None:
        return self.policy.timeout_s

    @property
    def isolation(self) -> Isolation:
        """The tier this tool runs in: its policy's, else its runtime's default."""
        if self.policy.isolation is not None:
            return self.policy.isolation
        kind = self.runtime.kind if self.runtime is not None else None
        return "sandbox" if kind == "code" else "process"

    def with_changes(self, **changes: Any) -> Tool:
        """A validated copy with some fields replaced (:class:`InvalidDefinition` if not)."""
        data = self.model_dump()
        data.update(changes)
        return build_tool(data)

    def to_document(self) -> dict[str, Any]:
        """The JSON document stored and queried (toolrun's own shape, plus ``id``)."""
        doc = self.model_dump(mode="json", exclude={"created_at", "updated_at"})
        doc["id"] = self.id
        return doc

    @classmethod
    def from_callable(cls, func: Callable[..., Any], **options: Any) -> Tool:
        """A Tool describing a Python function (see :mod:`toolrun.registry.decorators`)."""
        from toolrun.registry.decorators import tool_from_callable

        return tool_from_callable(func, **options)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Tool:
        data = {k: v for k, v in doc.items() if k != "id"}
        return cls.model_validate(data)


# The fields a tool is defined by (what a partial update may name) and the top-level keys of
# its stored document (what a filter may start a path with).
TOOL_FIELDS = tuple(f for f in Tool.model_fields if f not in ("created_at", "updated_at"))
DOCUMENT_FIELDS = (*TOOL_FIELDS, "id")


def find_nul(value: Any, path: str = "") -> str | None:
    """The path of the first string (or key) in a JSON value holding U+0000, if any (PostgreSQL
    cannot store it)."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return inner
            found = find_nul(item, inner)
            if found is not None:
                return found
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = find_nul(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _check_refs(node: Any, root: dict[str, Any]) -> None:
    """Every ``$ref`` must point inside the schema itself and resolve: toolrun never fetches
    remote schemas, and a dangling reference would only fail at call time."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith("#"):
                raise ValueError(f"$ref {ref!r} points outside the schema; use #/$defs/...")
            target: Any = root
            for part in [p for p in ref[1:].split("/") if p]:
                key = part.replace("~1", "/").replace("~0", "~")
                if isinstance(target, dict) and key in target:
                    target = target[key]
                elif isinstance(target, list) and key.isdigit() and int(key) < len(target):
                    target = target[int(key)]
                else:
                    raise ValueError(f"$ref {ref!r} does not resolve inside the schema")
        for item in node.values():
            _check_refs(item, root)
    elif isinstance(node, list):
        for item in node:
            _check_refs(item, root)


def build_tool(
    fields: Mapping[str, Any], *, paths: Mapping[str, str] | None = None, what: str = "tool"
) -> Tool:
    """``Tool(**fields)`` with Pydantic's errors turned into one readable InvalidDefinition.

    ``paths`` renames the first part of error locations (e.g. ``runtime`` to
    ``tool_metadata.runtime``) so messages speak the caller's vocabulary.
    """
    try:
        return Tool.model_validate(dict(fields))
    except ValidationError as exc:
        detail = []
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            if loc and paths and loc[0] in paths:
                loc[0] = paths[loc[0]]
            detail.append({"path": ".".join(loc) or "(root)", "message": str(err["msg"])})
        problems = "; ".join(f"{d['path']}: {d['message']}" for d in detail)
        raise InvalidDefinition(f"invalid {what}: {problems}", detail=detail) from None
