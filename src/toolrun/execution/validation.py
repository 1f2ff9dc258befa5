"""Argument validation against a tool's input schema, with compiled validators cached."""

from __future__ import annotations

from typing import Any

import jsonschema

from toolrun.errors import ArgumentsInvalid
from toolrun.registry.tool import Tool


class ArgumentValidator:
    """Validates call arguments, listing every violation. Validators are cached per tool
    version (id + update time), so an updated schema takes effect at once."""

    def __init__(self, max_cached: int = 4096) -> None:
        self._cache: dict[tuple[str, Any], jsonschema.Draft202012Validator] = {}
        self._max = max_cached

    def _validator(self, tool: Tool) -> jsonschema.Draft202012Validator:
        key = (tool.id, tool.updated_at)
        validator = self._cache.get(key)
        if validator is None:
            if len(self._cache) >= self._max:
                self._cache.clear()
            validator = jsonschema.Draft202012Validator(tool.input_schema)
            self._cache[key] = validator
        return validator

    def validate(self, tool: Tool, arguments: dict[str, Any]) -> None:
        errors = sorted(self._validator(tool).iter_errors(arguments), key=lambda e: list(e.path))
        if not errors:
            return
        violations = [
            {
                "path": "/".join(str(p) for p in err.absolute_path) or "(root)",
                "message": err.message,
            }
            for err in errors
        ]
        listing = "; ".join(f"{v['path']}: {v['message']}" for v in violations)
        raise ArgumentsInvalid(
            f"invalid arguments for {tool.id}: {listing}", detail={"violations": violations}
        )
