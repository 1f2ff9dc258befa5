"""Tools from Python functions: :func:`tool_from_callable` and the ``@tool`` decorator."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, overload

from pydantic import ValidationError

from toolrun.errors import InvalidDefinition
from toolrun.registry.runtimes import PythonRuntime
from toolrun.registry.schema import analyze_callable
from toolrun.registry.tool import ExecutionPolicy, Tool, build_tool

F = TypeVar("F", bound=Callable[..., Any])
TOOL_ATTR = "__toolrun_tool__"
_UNSET: Any = object()


def import_path(func: Callable[..., Any]) -> str | None:
    """``module:qualname`` when a fresh process can import ``func`` by that path, else None."""
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    owner = getattr(func, "__self__", None)
    if owner is not None and not isinstance(owner, type):  # a bound method needs its instance
        return None
    if "." in qualname and _first_parameter(func) == "self":  # a method seen at class creation
        return None
    return f"{module}:{qualname}"


def _first_parameter(func: Callable[..., Any]) -> str | None:
    try:
        return next(iter(inspect.signature(func).parameters), None)
    except (TypeError, ValueError):
        return None


def tool_from_callable(
    func: Callable[..., Any],
    *,
    name: str | None = None,
    version: str | None = None,
    namespace: str | None = None,
    description: str | None = None,
    tags: Iterable[str] = (),
    default_params: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    timeout_s: float | None = None,
    trusted: bool = False,
    output_schema: dict[str, Any] | None = _UNSET,
) -> Tool:
    """Describe ``func`` as a Tool: input schema from its signature and docstring, description
    from the docstring, output schema from the return annotation (pass ``output_schema=None``
    to leave it out), and a Python runtime when ``func`` is importable at module level."""
    if not callable(func):
        raise InvalidDefinition(f"{func!r} is not callable")
    spec = analyze_callable(func)
    target = import_path(func)
    fields = {
        "name": name or getattr(func, "__name__", ""),
        "version": version,
        "namespace": namespace,
        "description": spec.doc.description if description is None else description,
        "tags": list(tags),
        "input_schema": spec.input_schema,
        "output_schema": spec.output_schema if output_schema is _UNSET else output_schema,
        "default_params": dict(default_params or {}),
        "metadata": dict(metadata or {}),
        "runtime": PythonRuntime(target=target) if target else None,
        "policy": policy(timeout_s, trusted),
    }
    return build_tool(fields, what=f"tool from {getattr(func, '__qualname__', func)!r}")


def policy(timeout_s: float | None, trusted: bool) -> ExecutionPolicy:
    """``trusted`` tools may run inline in the API process; others run in a worker."""
    try:
        return ExecutionPolicy(timeout_s=timeout_s, isolation="inline" if trusted else "process")
    except ValidationError:
        raise InvalidDefinition(f"timeout_s must be a positive number, got {timeout_s!r}") from None


_OPTIONS = frozenset(inspect.signature(tool_from_callable).parameters) - {"func"}


def get_tool(func: Any) -> Tool | None:
    """The Tool ``@tool`` attached to ``func``, if any."""
    found = getattr(func, TOOL_ATTR, None)
    return found if isinstance(found, Tool) else None


@overload
def tool(func: F, /) -> F: ...


@overload
def tool(
    *,
    name: str | None = None,
    version: str | None = None,
    namespace: str | None = None,
    description: str | None = None,
    tags: Iterable[str] = (),
    default_params: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    timeout_s: float | None = None,
    trusted: bool = False,
    output_schema: dict[str, Any] | None = _UNSET,
) -> Callable[[F], F]: ...


def tool(func: Any = None, /, **options: Any) -> Any:
    """Mark a function as a tool: ``@tool`` or ``@tool(version="v1.0.0", tags=[...])``.

    The function is returned unchanged, with its Tool in ``func.__toolrun_tool__``
    (see :func:`get_tool`). Definition errors surface at decoration time.
    """

    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise InvalidDefinition(f"@tool: unknown option(s) {', '.join(unknown)}")

    def attach(target: F) -> F:
        setattr(target, TOOL_ATTR, tool_from_callable(target, **options))
        return target

    if func is None:
        return attach
    if options:
        raise InvalidDefinition("@tool takes options as keywords only: @tool(name=...)")
    return attach(func)
