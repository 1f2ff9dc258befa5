"""Request and response shapes of the seed-002 families (``tool`` and ``function``).

Creation accepts three shapes (seed, toolrun's own ``Tool``, an OpenAI ``tools[]`` entry; see
:func:`toolrun.registry.formats.tool_from_any`); answers use the family's seed shape. A partial
update (``PUT``) takes seed or canonical field names; inside ``*_metadata`` the execution keys
go to their own fields and every other key is merged into the user metadata (``null`` deletes).
"""

from __future__ import annotations

from typing import Any, Literal

from toolrun.errors import InvalidDefinition
from toolrun.registry.formats import seed_path_to_canonical
from toolrun.registry.query import Filter, map_paths, parse_filter
from toolrun.registry.tool import DOCUMENT_FIELDS, TOOL_FIELDS, ExecutionPolicy, Tool

Family = Literal["tool", "function"]
FAMILIES: tuple[Family, ...] = ("tool", "function")
SCHEMA_KEYS = ("input_schema", "output_schema", "runtime", "namespace", "version")
POLICY_KEYS = tuple(ExecutionPolicy.model_fields)


def other(family: Family) -> Family:
    return "function" if family == "tool" else "tool"


def _seed_key(key: str) -> tuple[str, str] | None:
    for family in FAMILIES:
        if key.startswith(family + "_"):
            return family, key[len(family) + 1 :]
    return None


def update_changes(data: dict[str, Any], current: Tool) -> dict[str, Any]:
    """Turn a PUT body into top-level Tool field changes (see the module docstring)."""
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key in TOOL_FIELDS:
            changes[key] = value
            continue
        seed = _seed_key(key)
        field = seed[1] if seed else None
        if field == "id":
            if value != current.id:
                raise InvalidDefinition(
                    f"cannot rename {current.id!r} to {value!r}: "
                    "create the new id and delete this one"
                )
        elif field == "description":
            changes["description"] = value
        elif field in ("search_tags", "tags"):
            changes["tags"] = value
        elif field == "default_params":
            changes["default_params"] = value
        elif field == "metadata":
            changes.update(_metadata_changes(value, current))
        else:
            raise InvalidDefinition(
                f"unknown field {key!r}; a tool has {', '.join(TOOL_FIELDS)} "
                "(or the seed's *_id, *_search_tags, *_metadata, *_description, *_default_params)"
            )
    return changes


def _metadata_changes(value: Any, current: Tool) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidDefinition(f"*_metadata must be an object, got {type(value).__name__}")
    changes: dict[str, Any] = {}
    metadata = dict(current.metadata)
    policy = current.policy.model_dump()
    for key, item in value.items():
        if key in SCHEMA_KEYS:
            changes[key] = item
        elif key in POLICY_KEYS:
            policy[key] = item
            changes["policy"] = policy
        elif item is None:
            metadata.pop(key, None)
        else:
            metadata[key] = item
    changes["metadata"] = metadata
    return changes


def parse_family_filter(raw: Any, family: Family) -> Filter:
    """A query body in seed (or canonical) field names, parsed against the stored document."""
    if not isinstance(raw, dict):
        from toolrun.errors import QueryError

        raise QueryError(f"a query is a JSON object of field conditions, got {type(raw).__name__}")
    mapped = map_paths(raw, lambda path: seed_path_to_canonical(path, family))
    return parse_filter(mapped, roots=DOCUMENT_FIELDS)
