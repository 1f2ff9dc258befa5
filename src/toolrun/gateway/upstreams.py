"""Which model server answers which public model name, and how it is asked for tool calls.

The model map is a YAML or JSON file (``TOOLRUN_GATEWAY_CONFIG``)::

    models:
      - name: qwen-tools            # what clients send as "model"
        base_url: http://127.0.0.1:8080/v1
        model: Qwen2.5-7B-Instruct   # what the upstream is sent (default: name)
        api_key: env:QWEN_API_KEY    # or secret:NAME (TOOLRUN_SECRETS__NAME); optional
        mode: emulate                # native | emulate | auto (default)

``native`` passes ``tools`` through; ``emulate`` shows them as Python and reads calls back
(:mod:`toolrun.gateway.emulate`); ``auto`` tries native once per upstream and switches to
emulation for good when the upstream answers 400 about tools (:meth:`Upstreams.accepts_tools`).
``TOOLRUN_LLM_BASE_URL`` and ``TOOLRUN_LLM_MODEL`` add one model in ``auto`` mode, named as the
upstream model, with ``TOOLRUN_LLM_API_KEY``. Keys are references, never written in the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from toolrun.config import Settings
from toolrun.errors import InvalidDefinition
from toolrun.gateway.errors import ModelNotFound
from toolrun.llm.client import LLMClient
from toolrun.llm.errors import LLMRejected

Mode = Literal["native", "emulate", "auto"]
_TOOL_WORDS = ("tool", "function")


class ModelEntry(BaseModel):
    """One entry of the model map."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    base_url: str = Field(pattern=r"^https?://")
    model: str | None = Field(None, min_length=1)
    api_key: str | None = Field(None, pattern=r"^(env|secret):\S+$")
    mode: Mode = "auto"
    timeout_s: float | None = Field(None, gt=0, le=3600)


class ModelMap(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[ModelEntry] = Field(default_factory=list)


@dataclass
class Upstream:
    """A public model name bound to a server, the model it is sent as, and a mode."""

    name: str
    base_url: str
    model: str
    mode: Mode
    client: LLMClient = field(repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)  # its key, for log redaction

    @property
    def key(self) -> tuple[str, str]:
        return (self.base_url, self.model)


def load_model_map(path: Path) -> ModelMap:
    """The model map file (YAML, or JSON by its ``.json`` suffix); :class:`InvalidDefinition`
    naming the file and the problem."""
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        return ModelMap.model_validate(data or {})
    except OSError as exc:
        raise InvalidDefinition(f"cannot read the gateway model map {path}: {exc}") from exc
    except (ValueError, yaml.YAMLError) as exc:
        if isinstance(exc, ValidationError):
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise InvalidDefinition(f"gateway model map {path}: {problems}") from None
        raise InvalidDefinition(f"gateway model map {path} is not valid: {exc}") from exc


def _resolve_key(reference: str | None, settings: Settings, name: str) -> str | None:
    if reference is None:
        return None
    kind, _, ref = reference.partition(":")
    if kind == "env":
        value = os.environ.get(ref)
    else:
        secret = settings.secrets.get(ref)
        value = secret.get_secret_value() if secret is not None else None
    if not value:
        raise InvalidDefinition(f"gateway model {name!r}: its api_key {reference} is not set")
    return value


class Upstreams:
    """The model map in force, one HTTP client per upstream, and the ``auto`` verdicts."""

    def __init__(self, upstreams: list[Upstream]) -> None:
        self._by_name: dict[str, Upstream] = {}
        for upstream in upstreams:
            if upstream.name in self._by_name:
                raise InvalidDefinition(f"gateway model {upstream.name!r} is mapped twice")
            self._by_name[upstream.name] = upstream
        self._accepts_tools: dict[tuple[str, str], bool] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Upstreams:
        entries: list[tuple[ModelEntry, str | None]] = []
        if settings.gateway_config is not None:
            for entry in load_model_map(settings.gateway_config).models:
                entries.append((entry, _resolve_key(entry.api_key, settings, entry.name)))
        if settings.llm_base_url and settings.llm_model:
            key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
            default = ModelEntry(name=settings.llm_model, base_url=settings.llm_base_url)
            if all(e.name != default.name for e, _ in entries):
                entries.append((default, key))
        upstreams = []
        for entry, key in entries:
            client = LLMClient(
                entry.base_url,
                entry.model or entry.name,
                api_key=key,
                timeout_s=entry.timeout_s or settings.llm_timeout_s,
                max_retries=settings.llm_max_retries,
            )
            secrets = (key,) if key else ()
            upstreams.append(
                Upstream(entry.name, client.base_url, client.model, entry.mode, client, secrets)
            )
        return cls(upstreams)

    def __iter__(self) -> Iterator[Upstream]:
        return iter(self._by_name.values())

    def get(self, name: str) -> Upstream:
        upstream = self._by_name.get(name)
        if upstream is None:
            raise ModelNotFound(
                f"The model `{name}` does not exist or you do not have access to it.",
                param="model",
            )
        return upstream

    def secrets(self) -> list[str]:
        return [secret for upstream in self for secret in upstream.secrets]

    def uses_native(self, upstream: Upstream) -> bool | None:
        """Whether to send ``tools`` natively: ``None`` while an ``auto`` upstream is untried."""
        if upstream.mode != "auto":
            return upstream.mode == "native"
        return self._accepts_tools.get(upstream.key)

    def record(self, upstream: Upstream, accepts_tools: bool) -> None:
        """Keep the ``auto`` verdict of an upstream (for every model name mapped to it)."""
        self._accepts_tools[upstream.key] = accepts_tools

    async def aclose(self) -> None:
        for upstream in self:
            await upstream.client.aclose()


def refuses_tools(error: Exception) -> bool:
    """An upstream's answer that means "no tool support here": a 400 (or 404/422/501)
    whose message mentions tools or functions."""
    if not isinstance(error, LLMRejected) or error.status not in (400, 404, 422, 501):
        return False
    text = (error.upstream_message or "").lower()
    return any(word in text for word in _TOOL_WORDS)


def passthrough_options(raw: dict[str, Any], own: frozenset[str]) -> dict[str, Any]:
    """The request's fields the gateway does not handle itself, for the upstream."""
    return {k: v for k, v in raw.items() if k not in own and v is not None}
