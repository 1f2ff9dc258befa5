"""What the extractor found, with confidence and evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from toolrun.response import to_jsonable


@dataclass
class Extraction:
    """What :func:`extract_arguments` found: the arguments, the required parameters it could
    not fill, a confidence in ``[0, 1]`` and the prompt span behind each argument."""

    arguments: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    confidence: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejected: list[dict[str, str]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing

    def explicit(self) -> dict[str, Any]:
        """The arguments the prompt itself gave (not the schema's defaults)."""
        return {
            k: v
            for k, v in self.arguments.items()
            if self.evidence.get(k, {}).get("source") != "default"
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "arguments": to_jsonable(self.arguments),
            "missing": list(self.missing),
            "confidence": dict(self.confidence),
            "evidence": dict(self.evidence),
        }
