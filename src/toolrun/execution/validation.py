"""Argument validation on the executor's hot path: the registry's ``validate_arguments`` with
each tool's compiled validator cached per tool version."""

from __future__ import annotations

from typing import Any

import jsonschema

from toolrun.registry.schema import compile_validator, validate_arguments
from toolrun.registry.tool import Tool


class ArgumentValidator:
    """Validates call arguments, listing every violation. Validators are cached per tool
    version (id + update time), so an updated schema takes effect at once."""

    def __init__(self, max_cached: int = 4096) -> None:
        self._cache: dict[tuple[str, Any], jsonschema.Draft202012Validator] = {}
        self._max = max_cached

    def validate(self, tool: Tool, arguments: dict[str, Any]) -> None:
        key = (tool.id, tool.updated_at)
        validator = self._cache.get(key)
        if validator is None:
            if len(self._cache) >= self._max:
                self._cache.clear()
            validator = self._cache[key] = compile_validator(tool.input_schema)
        validate_arguments(tool.input_schema, arguments, validator=validator, subject=tool.id)
