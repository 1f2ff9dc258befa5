"""The result of every tool call, shaped exactly like MCP's ``CallToolResult``.

``Response.to_dict()`` gives ``{"content": [...], "isError": bool}`` plus
``"structuredContent"`` when the tool produced a JSON value. Any Python return value and any
exception wraps into a Response with :meth:`Response.from_value` and
:meth:`Response.from_exception`.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

JSONValue = Any


@dataclass(frozen=True)
class TextItem:
    """Plain text (MCP ``TextContent``)."""

    text: str
    kind: ClassVar[str] = "text"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "text", "text": self.text}


@dataclass(frozen=True)
class ImageItem:
    """An image, base64 in ``data`` (MCP ``ImageContent``)."""

    data: str
    mime_type: str = "image/png"
    kind: ClassVar[str] = "image"

    @classmethod
    def from_bytes(cls, raw: bytes, mime_type: str = "image/png") -> ImageItem:
        return cls(base64.b64encode(raw).decode("ascii"), mime_type)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "image", "data": self.data, "mimeType": self.mime_type}


@dataclass(frozen=True)
class AudioItem:
    """Audio, base64 in ``data`` (MCP ``AudioContent``)."""

    data: str
    mime_type: str = "audio/wav"
    kind: ClassVar[str] = "audio"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "audio", "data": self.data, "mimeType": self.mime_type}


@dataclass(frozen=True)
class BinaryItem:
    """Any other bytes, as an MCP embedded blob resource (``{"type": "resource", ...}``)."""

    data: str
    mime_type: str = "application/octet-stream"
    uri: str = ""
    kind: ClassVar[str] = "resource"

    @classmethod
    def from_bytes(cls, raw: bytes, mime_type: str = "application/octet-stream") -> BinaryItem:
        digest = hashlib.sha256(raw).hexdigest()[:16]
        return cls(base64.b64encode(raw).decode("ascii"), mime_type, f"toolrun://blob/{digest}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "resource",
            "resource": {"uri": self.uri, "mimeType": self.mime_type, "blob": self.data},
        }


@dataclass(frozen=True)
class JsonItem:
    """A JSON value. MCP has no JSON content type, so it travels as text holding the JSON;
    the value itself also becomes the response's ``structuredContent``."""

    value: JSONValue
    kind: ClassVar[str] = "json"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "text", "text": dumps(self.value)}


ResponseItem = TextItem | ImageItem | AudioItem | BinaryItem | JsonItem
_ITEM_TYPES = (TextItem, ImageItem, AudioItem, BinaryItem, JsonItem)


def dumps(value: JSONValue) -> str:
    """Compact JSON that refuses NaN/Infinity (they are not JSON)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def to_jsonable(value: Any) -> JSONValue:
    """Best-effort conversion of a Python return value into JSON data."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return to_jsonable(model_dump(mode="json"))
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return str(isoformat())
    return str(value)


@dataclass(frozen=True)
class Response:
    """``is_error`` plus a list of content items; see the module docstring."""

    is_error: bool = False
    content: tuple[ResponseItem, ...] = field(default_factory=tuple)
    structured: dict[str, JSONValue] | None = None

    @classmethod
    def from_value(cls, value: Any) -> Response:
        """Wrap anything a tool returned."""
        if isinstance(value, Response):
            return value
        if isinstance(value, _ITEM_TYPES):
            return cls.of(value)
        if (
            isinstance(value, list | tuple)
            and value
            and all(isinstance(v, _ITEM_TYPES) for v in value)
        ):
            return cls.of(*value)
        if isinstance(value, bytes | bytearray):
            return cls.of(BinaryItem.from_bytes(bytes(value)))
        if isinstance(value, str):
            return cls(content=(TextItem(value),), structured={"result": value})
        data = to_jsonable(value)
        structured = data if isinstance(data, dict) else {"result": data}
        content: tuple[ResponseItem, ...] = () if data is None else (JsonItem(data),)
        return cls(content=content, structured=structured)

    @classmethod
    def of(cls, *items: ResponseItem, is_error: bool = False) -> Response:
        structured = None
        json_items = [i for i in items if isinstance(i, JsonItem)]
        if len(json_items) == 1:
            value = json_items[0].value
            structured = value if isinstance(value, dict) else {"result": value}
        return cls(is_error=is_error, content=tuple(items), structured=structured)

    @classmethod
    def error(cls, message: str) -> Response:
        return cls(is_error=True, content=(TextItem(message),))

    @classmethod
    def timed_out(cls, timeout_s: float) -> Response:
        """The answer for a call stopped at its time limit (a :class:`TimedOut`)."""
        return TimedOut(is_error=True, content=(TextItem(f"timed out after {timeout_s:g}s"),))

    @classmethod
    def from_exception(cls, exc: BaseException) -> Response:
        return cls.error(f"{type(exc).__name__}: {exc}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Response:
        """Inverse of :meth:`to_dict` (JSON items come back as text items)."""
        items: list[ResponseItem] = []
        for raw in data.get("content", []) or []:
            kind = raw.get("type")
            if kind == "text":
                items.append(TextItem(str(raw.get("text", ""))))
            elif kind == "image":
                items.append(ImageItem(raw["data"], raw.get("mimeType", "image/png")))
            elif kind == "audio":
                items.append(AudioItem(raw["data"], raw.get("mimeType", "audio/wav")))
            elif kind == "resource":
                res = raw.get("resource", {})
                if "blob" in res:
                    items.append(
                        BinaryItem(
                            res["blob"],
                            res.get("mimeType", "application/octet-stream"),
                            res.get("uri", ""),
                        )
                    )
                else:
                    items.append(TextItem(str(res.get("text", ""))))
        structured = data.get("structuredContent")
        return cls(
            is_error=bool(data.get("isError", False)),
            content=tuple(items),
            structured=dict(structured) if isinstance(structured, Mapping) else None,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "content": [item.to_dict() for item in self.content],
            "isError": self.is_error,
        }
        if self.structured is not None:
            out["structuredContent"] = self.structured
        return out

    # The seed-001 PHP API calls it toArray(); keep the familiar name.
    to_array = to_dict

    @property
    def text(self) -> str:
        """All text-bearing items joined by newlines."""
        return "\n".join(
            i.to_dict()["text"] for i in self.content if isinstance(i, TextItem | JsonItem)
        )

    @property
    def output(self) -> JSONValue:
        """The call's value as a seed-002 ``output``: the structured value when there is one
        (``{"result": x}`` for non-object values), else the text, else the content list."""
        if self.structured is not None:
            return self.structured
        if self.content and all(isinstance(i, TextItem) for i in self.content):
            return self.text
        return [item.to_dict() for item in self.content]

    @property
    def value(self) -> Any:
        """What a Python caller of the tool gets back (code actions, chains, generated code):
        the value the tool returned (one JSON item), else the structured content, else the
        text. ``{"result": x}`` is unwrapped unless the tool returned exactly that object,
        which its text content (the value as JSON) tells."""
        items = self.content
        if len(items) == 1 and isinstance(items[0], JsonItem):
            return items[0].value
        structured = self.structured
        if structured is not None and set(structured) == {"result"}:
            try:
                as_text = json.loads(self.text)
            except ValueError:
                as_text = None
            return structured if as_text == structured else structured["result"]
        if structured is not None:
            return structured
        texts = [item.text for item in items if isinstance(item, TextItem)]
        return "\n".join(texts) if texts else None

    def items(self) -> Iterable[ResponseItem]:
        return iter(self.content)


@dataclass(frozen=True)
class TimedOut(Response):
    """A Response for a call stopped at its time limit: the executor tells it by type, not by
    reading its text (a tool may well return an error that says "timed out")."""
