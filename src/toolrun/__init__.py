"""toolrun: one registry of tools, one way to run them, every interface LLMs use to reach them.

The public names below load lazily, so ``import toolrun`` (which every worker process does)
stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "AudioItem": "toolrun.response",
    "BinaryItem": "toolrun.response",
    "ExecutionPolicy": "toolrun.registry.tool",
    "FunctionDefinition": "toolrun.registry.builders",
    "ImageItem": "toolrun.response",
    "JsonItem": "toolrun.response",
    "Parameter": "toolrun.registry.builders",
    "Registry": "toolrun.registry.registry",
    "Response": "toolrun.response",
    "Settings": "toolrun.config",
    "TextItem": "toolrun.response",
    "Tool": "toolrun.registry.tool",
    "ToolGroup": "toolrun.registry.groups",
    "ToolrunError": "toolrun.errors",
    "create_app": "toolrun.server.app",
    "tool": "toolrun.registry.decorators",
}

__all__ = [
    "AudioItem",
    "BinaryItem",
    "ExecutionPolicy",
    "FunctionDefinition",
    "ImageItem",
    "JsonItem",
    "Parameter",
    "Registry",
    "Response",
    "Settings",
    "TextItem",
    "Tool",
    "ToolGroup",
    "ToolrunError",
    "__version__",
    "create_app",
    "tool",
]

if TYPE_CHECKING:
    from toolrun.config import Settings
    from toolrun.errors import ToolrunError
    from toolrun.registry.builders import FunctionDefinition, Parameter
    from toolrun.registry.decorators import tool
    from toolrun.registry.groups import ToolGroup
    from toolrun.registry.registry import Registry
    from toolrun.registry.tool import ExecutionPolicy, Tool
    from toolrun.response import (
        AudioItem,
        BinaryItem,
        ImageItem,
        JsonItem,
        Response,
        TextItem,
    )
    from toolrun.server.app import create_app


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'toolrun' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
