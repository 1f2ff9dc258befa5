"""Adapters between :class:`Tool` and the shapes other systems speak.

- OpenAI ``tools[]`` entries: :func:`to_openai` / :func:`from_openai`;
- MCP tools (``inputSchema``...): :func:`to_mcp` / :func:`from_mcp`;
- seed 002's ``OrgTools`` / ``OrgFunctions`` documents (``tool_*`` or ``function_*`` keys):
  :func:`to_seed` / :func:`from_seed`, plus :func:`seed_path_to_canonical` for query paths.

In the seed shape, ``*_metadata`` holds the toolrun fields that have no seed field of their
own (:data:`SEED_METADATA_KEYS`) beside the user's keys (``Tool.metadata``); those reserved
keys win over user keys of the same name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Literal

from toolrun.errors import InvalidDefinition
from toolrun.registry.tool import EMPTY_OBJECT_SCHEMA, ExecutionPolicy, Tool, build_tool

Family = Literal["tool", "function"]
OPENAI_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# Every ExecutionPolicy field may appear in *_metadata; exports always show timeout_s and
# isolation (as seed clients expect) and the others only when they differ from the default.
_POLICY_KEYS = tuple(ExecutionPolicy.model_fields)
_ALWAYS_EXPORTED_POLICY = ("timeout_s", "isolation")
SEED_METADATA_KEYS = (
    "input_schema", "output_schema", "runtime", "version", "namespace", *_POLICY_KEYS
)  # fmt: skip
_MCP_META = "toolrun"


# -- names ---------------------------------------------------------------------------------------


def openai_name(raw: str, max_length: int = 64) -> str:
    """A name OpenAI accepts (``^[a-zA-Z0-9_-]{1,64}$``): other characters become ``_``; a
    name too long is cut and given a short hash of the *original* so it stays unique."""
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", raw) or "_"
    if len(name) <= max_length:
        return name
    digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:8]
    return f"{name[: max_length - 9]}_{digest}"


def check_openai_name(name: str) -> str:
    if not OPENAI_NAME_RE.match(name):
        raise InvalidDefinition(
            f"invalid function name {name!r}: OpenAI needs 1-64 letters, digits, '_' or '-'"
        )
    return name


def _object_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "object", **schema} if "type" not in schema else dict(schema)


def _require(data: Any, key: str, kind: type | tuple[type, ...], where: str, hint: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind):
        got = "nothing" if value is None else type(value).__name__
        raise InvalidDefinition(f"{where}: {key!r} is required ({hint}), got {got}")
    return value


def _optional(data: Mapping[str, Any], key: str, kind: type, where: str, default: Any) -> Any:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise InvalidDefinition(
            f"{where}: {key!r} must be {kind.__name__}, got {type(value).__name__}"
        )
    return value


# -- OpenAI --------------------------------------------------------------------------------------


def to_openai(tool: Tool, name: str | None = None) -> dict[str, Any]:
    """An OpenAI ``tools[]`` entry; ``name`` defaults to the tool name made OpenAI-safe."""
    function: dict[str, Any] = {
        "name": check_openai_name(name) if name else openai_name(tool.name),
        "description": tool.description,
        "parameters": _object_schema(tool.input_schema),
    }
    if isinstance(tool.metadata.get("openai_strict"), bool):
        function["strict"] = tool.metadata["openai_strict"]
    return {"type": "function", "function": function}


def from_openai(entry: Mapping[str, Any]) -> Tool:
    """From ``{"type": "function", "function": {...}}`` or a bare ``{"name", "parameters"}``."""
    where = "OpenAI tool"
    if not isinstance(entry, Mapping):
        raise InvalidDefinition(f"{where} must be an object, got {type(entry).__name__}")
    if "function" in entry or "type" in entry:
        if entry.get("type") != "function":
            raise InvalidDefinition(f"{where}: only type 'function' is supported")
        entry = _require(entry, "function", Mapping, where, "the function definition object")
    name = _require(entry, "name", str, where, "the function name")
    metadata: dict[str, Any] = {}
    if isinstance(entry.get("strict"), bool):
        metadata["openai_strict"] = entry["strict"]
    fields = {
        "name": name,
        "description": _optional(entry, "description", str, where, ""),
        "input_schema": _optional(entry, "parameters", Mapping, where, EMPTY_OBJECT_SCHEMA),
        "metadata": metadata,
    }
    return build_tool(fields, what=where, paths={"input_schema": "function.parameters"})


# -- MCP -----------------------------------------------------------------------------------------


def to_mcp(tool: Tool, name: str | None = None) -> dict[str, Any]:
    """An MCP tool. ``metadata["title"]``/``["annotations"]`` become MCP's fields; version,
    namespace and tags travel in ``_meta.toolrun`` so a round trip loses nothing."""
    out: dict[str, Any] = {"name": name or tool.name}
    if isinstance(tool.metadata.get("title"), str):
        out["title"] = tool.metadata["title"]
    out["description"] = tool.description
    out["inputSchema"] = _object_schema(tool.input_schema)
    if tool.output_schema is not None and tool.output_schema.get("type") == "object":
        out["outputSchema"] = tool.output_schema
    if isinstance(tool.metadata.get("annotations"), Mapping):
        out["annotations"] = dict(tool.metadata["annotations"])
    ours = {"version": tool.version, "namespace": tool.namespace, "tags": tool.tags}
    meta = dict(tool.metadata.get("_meta") or {})
    if any(ours.values()):
        meta[_MCP_META] = {k: v for k, v in ours.items() if v}
    if meta:
        out["_meta"] = meta
    return out


def from_mcp(entry: Mapping[str, Any]) -> Tool:
    where = "MCP tool"
    if not isinstance(entry, Mapping):
        raise InvalidDefinition(f"{where} must be an object, got {type(entry).__name__}")
    name = _require(entry, "name", str, where, "the tool name")
    schema = _require(entry, "inputSchema", Mapping, where, "a JSON Schema object")
    metadata: dict[str, Any] = {}
    if entry.get("title") is not None:
        metadata["title"] = _optional(entry, "title", str, where, "")
    if entry.get("annotations") is not None:
        metadata["annotations"] = dict(_optional(entry, "annotations", Mapping, where, {}))
    meta = dict(_optional(entry, "_meta", Mapping, where, {}))
    ours = meta.pop(_MCP_META, None) or {}
    if not isinstance(ours, Mapping):
        raise InvalidDefinition(f"{where}: _meta.{_MCP_META} must be an object")
    if meta:
        metadata["_meta"] = meta
    fields = {
        "name": name,
        "version": ours.get("version"),
        "namespace": ours.get("namespace"),
        "tags": list(ours.get("tags") or []),
        "description": _optional(entry, "description", str, where, ""),
        "input_schema": schema,
        "output_schema": entry.get("outputSchema"),
        "metadata": metadata,
    }
    paths = {"input_schema": "inputSchema", "output_schema": "outputSchema"}
    return build_tool(fields, what=where, paths=paths)


# -- seed 002 (OrgTools / OrgFunctions) ----------------------------------------------------------


def _check_family(family: str) -> str:
    if family not in ("tool", "function"):
        raise InvalidDefinition(f"family must be 'tool' or 'function', got {family!r}")
    return family


def to_seed(tool: Tool, family: Family = "tool") -> dict[str, Any]:
    p = _check_family(family)
    doc = tool.to_document()
    metadata = dict(doc["metadata"])
    metadata.update({k: doc[k] for k in SEED_METADATA_KEYS if k not in _POLICY_KEYS})
    defaults = ExecutionPolicy().model_dump()
    metadata.update(
        {k: v for k, v in doc["policy"].items() if k in _ALWAYS_EXPORTED_POLICY or v != defaults[k]}
    )
    return {
        f"{p}_id": tool.id,
        f"{p}_search_tags": doc["tags"],
        f"{p}_metadata": metadata,
        f"{p}_description": doc["description"],
        f"{p}_default_params": doc["default_params"],
    }


def from_seed(data: Mapping[str, Any], family: Family = "tool") -> Tool:
    """From a seed document; accepts ``from_dict``'s alias ``{family}_tags`` and a version in
    the id (``weather_lookup:v1.0.0-stable``) or in ``*_metadata.version``."""
    p = _check_family(family)
    where = f"{p} document"
    if not isinstance(data, Mapping):
        raise InvalidDefinition(f"a {where} must be a JSON object, got {type(data).__name__}")
    known = [f"{p}_{k}" for k in ("id", "search_tags", "tags", "metadata", "description")]
    known.append(f"{p}_default_params")
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        other = "function" if p == "tool" else "tool"
        hint = f" (these look like a {other} document)" if unknown[0].startswith(other) else ""
        raise InvalidDefinition(
            f"unknown field(s) {', '.join(unknown)} in a {where}{hint}; expected {', '.join(known)}"
        )
    ident = _require(data, f"{p}_id", str, where, "'name' or 'name:version'")
    name, _, id_version = ident.partition(":")
    tags: list[Any] = []
    for key in (f"{p}_search_tags", f"{p}_tags"):
        value = _optional(data, key, list, where, [])
        if not all(isinstance(t, str) for t in value):
            raise InvalidDefinition(f"{where}: {key!r} must be a list of strings")
        tags += value
    meta = dict(_optional(data, f"{p}_metadata", Mapping, where, {}))
    reserved = {k: meta.pop(k) for k in SEED_METADATA_KEYS if k in meta}
    version = reserved.get("version")
    if id_version and version not in (None, id_version):
        raise InvalidDefinition(
            f"{where}: {p}_id says version {id_version!r} but "
            f"{p}_metadata.version says {version!r}; make them agree or drop one"
        )
    runtime = reserved.get("runtime")
    if runtime is not None and not isinstance(runtime, Mapping):
        raise InvalidDefinition(
            f"{where}: {p}_metadata.runtime must be an object such as "
            '{"kind": "python", "target": "package.module:function"}, '
            f"got {type(runtime).__name__}"
        )
    policy = {k: reserved[k] for k in _POLICY_KEYS if reserved.get(k) is not None}
    fields = {
        "name": name,
        "version": id_version or version,
        "namespace": reserved.get("namespace"),
        "description": _optional(data, f"{p}_description", str, where, ""),
        "tags": tags,
        "input_schema": reserved.get("input_schema") or dict(EMPTY_OBJECT_SCHEMA),
        "output_schema": reserved.get("output_schema"),
        "default_params": _optional(data, f"{p}_default_params", Mapping, where, {}),
        "metadata": meta,
        "runtime": runtime,
        "policy": policy,
    }
    paths = {k: f"{p}_metadata.{k}" for k in SEED_METADATA_KEYS} | {
        "name": f"{p}_id",
        "version": f"{p}_id",
        "description": f"{p}_description",
        "default_params": f"{p}_default_params",
        "tags": f"{p}_search_tags",
        "policy": f"{p}_metadata",
        "metadata": f"{p}_metadata",
    }
    return build_tool(fields, what=where, paths=paths)


def seed_path_to_canonical(path: str, family: Family = "tool") -> str:
    """Translate a query field path of the seed shape into toolrun's document shape
    (``tool_metadata.timeout_s`` -> ``policy.timeout_s``); other paths pass through."""
    p = _check_family(family)
    head, dot, rest = path.partition(".")
    top = {
        f"{p}_id": "id",
        f"{p}_search_tags": "tags",
        f"{p}_tags": "tags",
        f"{p}_description": "description",
        f"{p}_default_params": "default_params",
    }
    if head in top:
        return top[head] + dot + rest
    if head != f"{p}_metadata":
        return path
    if not rest:
        return "metadata"
    key, dot, sub = rest.partition(".")
    if key in _POLICY_KEYS:
        return f"policy.{key}{dot}{sub}"
    if key in SEED_METADATA_KEYS:
        return rest
    return f"metadata.{rest}"


# -- detection -----------------------------------------------------------------------------------


def detect_format(data: Mapping[str, Any]) -> str:
    """``openai``, ``mcp``, ``seed-tool``, ``seed-function``, ``toolrun`` or ``unknown``."""
    if data.get("type") == "function" and isinstance(data.get("function"), Mapping):
        return "openai"
    if "inputSchema" in data:
        return "mcp"
    for family in ("tool", "function"):
        if any(str(k).startswith(f"{family}_") for k in data):
            return f"seed-{family}"
    if "parameters" in data and "name" in data and "input_schema" not in data:
        return "openai"  # a bare (legacy ``functions=[...]``) definition
    if "name" in data or "id" in data:
        return "toolrun"
    return "unknown"


def tool_from_any(data: Mapping[str, Any]) -> Tool:
    """Whatever shape ``data`` has (see :func:`detect_format`), as a Tool."""
    if not isinstance(data, Mapping):
        raise InvalidDefinition(f"a tool definition must be a JSON object, got {type(data)}")
    kind = detect_format(data)
    if kind == "openai":
        return from_openai(data)
    if kind == "mcp":
        return from_mcp(data)
    if kind in ("seed-tool", "seed-function"):
        return from_seed(data, "tool" if kind == "seed-tool" else "function")
    if kind == "toolrun":
        return _from_document(data)
    keys = ", ".join(sorted(map(str, data))) or "none"
    raise InvalidDefinition(
        f"unrecognised tool definition (keys: {keys}); expected toolrun's "
        "{name, input_schema, ...}, seed {tool_id, ...} or {function_id, ...}, "
        "OpenAI {type: 'function', function: {...}} or MCP {name, inputSchema}"
    )


def _from_document(data: Mapping[str, Any]) -> Tool:
    fields = {k: v for k, v in data.items() if k != "id"}
    ident = data.get("id")
    if ident is not None:
        if not isinstance(ident, str):
            raise InvalidDefinition(f"'id' must be a string like 'name:version', got {ident!r}")
        name, _, version = ident.partition(":")
        fields.setdefault("name", name)
        fields.setdefault("version", version or None)
    tool = build_tool(fields)
    if ident is not None and ident != tool.id:
        raise InvalidDefinition(f"'id' {ident!r} disagrees with name/version ({tool.id!r})")
    return tool
