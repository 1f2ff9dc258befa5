"""The Tool value: everything toolrun knows about one callable function.

Every other shape (seed-002 ``OrgTools``/``OrgFunctions``, Open Functions definitions, OpenAI
``tools[]`` entries, MCP tools) is a view of this value produced in :mod:`.formats`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from toolrun.errors import InvalidDefinition
from toolrun.registry.ids import make_id, validate_name, validate_version
from toolrun.registry.regex import check_patterns
from toolrun.registry.runtimes import Runtime

EMPTY_OBJECT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
Isolation = Literal["inline", "process"]


class ExecutionPolicy(BaseModel):
    """Limits of a call. ``isolation="inline"`` marks a tool *trusted*: it may run inside the
    API process (the fast path); every other tool runs in a worker process."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float | None = Field(default=None, gt=0, description="None: the server default.")
    isolation: Isolation = "process"

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

    @property
    def id(self) -> str:
        return make_id(self.name, self.version)

    @property
    def timeout_s(self) -> float | None:
        return self.policy.timeout_s

    def with_changes(self, **changes: Any) -> Tool:
        """A validated copy with some fields replaced."""
        data = self.model_dump()
        data.update(changes)
        return Tool.model_validate(data)

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
