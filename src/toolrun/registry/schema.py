"""JSON Schema (2020-12) for a Python callable's parameters, and argument validation.

The schema comes from a throw-away Pydantic model built from the signature: Pydantic already
knows how to express ``Literal``, ``Enum``, ``Optional``, containers, ``datetime``, nested models
(as ``$defs``) and ``Annotated[..., Field(...)]`` constraints, and the same model later coerces
validated JSON arguments back into those Python types (:meth:`CallableSpec.bind`). Parameter
descriptions and the summary come from the docstring (Google, NumPy or reST).
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, get_args

import docstring_parser
import jsonschema
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PydanticUserError,
    TypeAdapter,
    ValidationError,
    create_model,
)
from pydantic.fields import FieldInfo
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue

from toolrun.errors import ArgumentsInvalid, InvalidDefinition
from toolrun.registry.regex import compile_regex
from toolrun.response import AudioItem, BinaryItem, ImageItem, JsonItem, Response, TextItem

_CONTENT_TYPES: tuple[type, ...] = (
    Response, TextItem, ImageItem, AudioItem, BinaryItem, JsonItem, bytes, bytearray
)  # fmt: skip
_DOC_TYPES = {
    "str": "string", "string": "string", "int": "integer", "integer": "integer",
    "float": "number", "number": "number", "bool": "boolean", "boolean": "boolean",
    "list": "array", "tuple": "array", "sequence": "array", "array": "array",
    "dict": "object", "mapping": "object", "object": "object",
}  # fmt: skip
_MAX_MESSAGE = 200


class _Generator(GenerateJsonSchema):
    """Pydantic's generator without per-field titles and without warnings we don't act on."""

    ignored_warning_kinds = {"skipped-choice", "non-serializable-default"}

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


@dataclass(frozen=True)
class DocInfo:
    """What a docstring says: ``summary`` (first line), ``description`` (summary plus the long
    description), per-parameter descriptions and declared type names."""

    summary: str = ""
    description: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    param_types: Mapping[str, str] = field(default_factory=dict)


def parse_docstring(obj: Any) -> DocInfo:
    doc = inspect.getdoc(obj)
    if not doc:
        return DocInfo()
    parsed = docstring_parser.parse(doc)
    summary = (parsed.short_description or "").strip()
    long = (parsed.long_description or "").strip()
    return DocInfo(
        summary=summary,
        description="\n\n".join(p for p in (summary, long) if p),
        params={
            p.arg_name: " ".join(p.description.split()) for p in parsed.params if p.description
        },
        param_types={p.arg_name: p.type_name for p in parsed.params if p.type_name},
    )


@dataclass(frozen=True)
class _Param:
    field: str  # the name inside the Pydantic model (p0, p1, ...): never clashes with BaseModel
    name: str
    positional_only: bool


@dataclass(frozen=True)
class CallableSpec:
    """Everything derived from a callable: schemas, docs and an argument binder."""

    func: Callable[..., Any]
    doc: DocInfo
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    params: tuple[_Param, ...]
    accepts_extra: bool
    model: type[BaseModel]

    def bind(self, arguments: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Coerce JSON arguments into the annotated Python types (models, enums, datetimes).

        Only arguments actually given are passed, so the function's own defaults apply.
        Raises :class:`ArgumentsInvalid` when coercion fails.
        """
        known = {p.name for p in self.params}
        extra = {k: v for k, v in arguments.items() if k not in known}
        if extra and not self.accepts_extra:
            names = ", ".join(sorted(extra))
            raise ArgumentsInvalid(
                f"unexpected arguments: {names}",
                detail={
                    "violations": [
                        {"path": f"/{k}", "message": "unexpected argument"} for k in sorted(extra)
                    ]
                },
            )
        try:
            model = self.model.model_validate({k: v for k, v in arguments.items() if k in known})
        except ValidationError as exc:
            detail = [
                {"path": "/" + "/".join(str(p) for p in err["loc"]), "message": err["msg"]}
                for err in exc.errors()
            ]
            raise ArgumentsInvalid(_summary(detail), detail={"violations": detail}) from None
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for param in self.params:
            if param.positional_only:
                args.append(getattr(model, param.field))
            elif param.field in model.model_fields_set:
                kwargs[param.name] = getattr(model, param.field)
        kwargs.update(extra)
        return args, kwargs

    def call(self, arguments: Mapping[str, Any]) -> Any:
        args, kwargs = self.bind(arguments)
        return self.func(*args, **kwargs)


def analyze_callable(func: Callable[..., Any]) -> CallableSpec:
    """Inspect ``func``; raises :class:`InvalidDefinition` when a type has no JSON Schema."""
    where = getattr(func, "__qualname__", repr(func))
    try:
        sig = inspect.signature(func, eval_str=True)
    except NameError as exc:
        raise InvalidDefinition(f"cannot resolve the type hints of {where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise InvalidDefinition(f"cannot read the signature of {where}: {exc}") from None
    doc = parse_docstring(func)
    fields: dict[str, Any] = {}
    params: list[_Param] = []
    untyped: dict[str, str] = {}
    accepts_extra = False
    for index, param in enumerate(sig.parameters.values()):
        if param.kind is param.VAR_KEYWORD:
            accepts_extra = True
            continue
        if param.kind is param.VAR_POSITIONAL or (index == 0 and param.name in ("self", "cls")):
            continue
        annotation = param.annotation
        if annotation is param.empty:
            annotation = Any
            json_type = _doc_json_type(doc.param_types.get(param.name))
            if json_type:
                untyped[param.name] = json_type
        key = f"p{len(params)}"
        if isinstance(param.default, FieldInfo):  # def f(x: int = Field(3, description=...))
            fields[key] = (Annotated[annotation, param.default], Field(alias=param.name))
        elif param.default is param.empty:
            fields[key] = (annotation, Field(alias=param.name))
        else:
            fields[key] = (annotation, Field(default=param.default, alias=param.name))
        params.append(_Param(key, param.name, param.kind is param.POSITIONAL_ONLY))
    model_name = f"{getattr(func, '__name__', 'callable')}_arguments"
    try:
        model = create_model(model_name, __config__=ConfigDict(extra="ignore"), **fields)
        raw = model.model_json_schema(by_alias=True, schema_generator=_Generator)
    except (PydanticUserError, TypeError) as exc:
        culprit = _find_culprit(fields, params)
        raise InvalidDefinition(
            f"cannot build a JSON Schema for {where}{culprit}: {exc}".split("\n")[0]
        ) from None
    properties: dict[str, Any] = raw.get("properties", {})
    for name, json_type in untyped.items():
        properties[name] = {"type": json_type, **properties[name]}
    for name, text in doc.params.items():
        if name in properties and "description" not in properties[name]:
            properties[name]["description"] = text
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if raw.get("required"):
        schema["required"] = raw["required"]
    if not accepts_extra:
        schema["additionalProperties"] = False
    if raw.get("$defs"):
        schema["$defs"] = raw["$defs"]
    output = _output_schema(sig.return_annotation)
    return CallableSpec(func, doc, schema, output, tuple(params), accepts_extra, model)


def input_schema_for(func: Callable[..., Any]) -> dict[str, Any]:
    return analyze_callable(func).input_schema


def _doc_json_type(type_name: str | None) -> str | None:
    if not type_name:
        return None
    head = type_name.split(",")[0].strip().lower()  # "list of str, optional" -> "list of str"
    return _DOC_TYPES.get(head.split()[0] if head else "")


def _find_culprit(fields: dict[str, Any], params: list[_Param]) -> str:
    for param in params:
        try:
            TypeAdapter(fields[param.field][0]).json_schema(schema_generator=_Generator)
        except (PydanticUserError, TypeError):
            return f" (parameter {param.name!r})"
    return ""


def _mentions(annotation: Any, classes: tuple[type, ...]) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, classes):
        return True
    return any(_mentions(arg, classes) for arg in get_args(annotation))


def _output_schema(annotation: Any) -> dict[str, Any] | None:
    """Schema of the ``structuredContent`` that ``Response.from_value`` makes of a return value:
    object values as they are, any other value as ``{"result": value}``. ``None`` when the
    annotation says nothing useful or the shape cannot be known (e.g. ``Model | int``)."""
    if annotation in (inspect.Signature.empty, None, type(None), Any):
        return None
    if _mentions(annotation, _CONTENT_TYPES):
        return None
    try:
        schema = TypeAdapter(annotation).json_schema(
            mode="serialization", schema_generator=_Generator
        )
    except (PydanticUserError, TypeError):
        return None
    schema.pop("title", None)
    defs = schema.get("$defs", {})
    kind = _kind(schema, defs)
    if kind == "object":
        return schema
    if kind != "other":
        return None
    schema.pop("$defs", None)
    wrapped: dict[str, Any] = {
        "type": "object",
        "properties": {"result": schema},
        "required": ["result"],
    }
    if defs:
        wrapped["$defs"] = defs
    return wrapped


def _kind(schema: JsonSchemaValue, defs: Mapping[str, Any]) -> str:
    """``object``, ``other`` (never an object) or ``unknown``."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _kind(defs.get(ref.removeprefix("#/$defs/"), {}), defs)
    kind = schema.get("type")
    if kind == "object":
        return "object"
    if isinstance(kind, str):
        return "other"
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches and all(_kind(b, defs) == "other" for b in branches):
        return "other"
    return "unknown"


# -- validation ---------------------------------------------------------------------------------


def _is_datetime(value: object) -> bool:
    return not isinstance(value, str) or bool(datetime.fromisoformat(value))


def _linear_pattern(
    validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    """``pattern`` through toolrun's linear-time regex engine (:mod:`toolrun.registry.regex`):
    jsonschema's default uses backtracking ``re``, where one hostile pattern in a registered
    schema could stall the event loop that validates every call."""
    if validator.is_type(instance, "string") and not compile_regex(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _linear_pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        compiled = compile_regex(pattern)
        for key, value in instance.items():
            if compiled.search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


ArgumentsValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    validators={"pattern": _linear_pattern, "patternProperties": _linear_pattern_properties},
)


_FORMATS = jsonschema.FormatChecker()
if "date-time" not in _FORMATS.checkers:  # its checker needs the optional rfc3339-validator
    _FORMATS.checks("date-time", raises=ValueError)(_is_datetime)


@functools.lru_cache(maxsize=512)
def _cached_validator(key: str) -> jsonschema.Draft202012Validator:
    return ArgumentsValidator(json.loads(key), format_checker=_FORMATS)


def compile_validator(schema: Mapping[str, Any]) -> jsonschema.Draft202012Validator:
    """A validator for ``schema`` with toolrun's format checks, for callers that cache it."""
    return ArgumentsValidator(schema, format_checker=_FORMATS)


def _validator(schema: Mapping[str, Any]) -> jsonschema.Draft202012Validator:
    try:
        key = json.dumps(schema, sort_keys=True)
    except (TypeError, ValueError):
        return ArgumentsValidator(schema, format_checker=_FORMATS)
    return _cached_validator(key)


def argument_errors(
    schema: Mapping[str, Any],
    args: Any,
    validator: jsonschema.Draft202012Validator | None = None,
) -> list[dict[str, str]]:
    """Every violation of ``schema`` by ``args`` as ``{"path", "message", "validator"}``;
    ``path`` is a JSON Pointer (``""`` for the arguments object itself). ``validator``: one
    compiled for ``schema`` already (see :func:`compile_validator`)."""
    if not isinstance(args, Mapping):
        kind = type(args).__name__
        return [
            {"path": "", "message": f"arguments must be an object, got {kind}", "validator": "type"}
        ]
    errors = []
    for error in (validator or _validator(schema)).iter_errors(dict(args)):
        path = [str(p) for p in error.absolute_path]
        if error.validator == "required" and isinstance(error.instance, Mapping):
            missing = [p for p in error.validator_value if p not in error.instance]
            named = [p for p in missing if error.message.startswith(repr(p))]
            path += named[:1]
        message = error.message
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 3] + "..."
        pointer = "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in path)
        errors.append({"path": pointer, "message": message, "validator": str(error.validator)})
    return sorted(errors, key=lambda e: (e["path"], e["message"]))


def validate_arguments(
    schema: Mapping[str, Any],
    args: Any,
    *,
    validator: jsonschema.Draft202012Validator | None = None,
    subject: str = "",
) -> None:
    """Raise :class:`ArgumentsInvalid` listing every violation (``detail["violations"]``) when
    ``args`` do not satisfy ``schema``; ``subject`` (a tool id) goes into the message."""
    errors = argument_errors(schema, args, validator)
    if errors:
        summary = _summary(errors)
        message = summary.replace("invalid arguments", f"invalid arguments for {subject}", 1)
        raise ArgumentsInvalid(message if subject else summary, detail={"violations": errors})


def _summary(errors: list[dict[str, str]]) -> str:
    problems = "; ".join(f"{e['path'] or '(root)'}: {e['message']}" for e in errors)
    count = f"{len(errors)} problem{'s' if len(errors) > 1 else ''}"
    return f"invalid arguments ({count}): {problems}"
