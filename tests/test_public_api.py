"""The public surface is curated: a name appearing in or vanishing from ``toolrun.__all__``
must be a decision, made here too."""

from __future__ import annotations

import subprocess
import sys

import toolrun

EXPECTED = {
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
}


def test_exported_names() -> None:
    assert set(toolrun.__all__) == EXPECTED
    assert toolrun.__all__ == sorted(toolrun.__all__)
    for name in toolrun.__all__:
        assert getattr(toolrun, name) is not None


def test_importing_toolrun_stays_light() -> None:
    heavy = "('fastapi', 'sqlalchemy', 'pydantic')"
    code = f"import sys, toolrun; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
