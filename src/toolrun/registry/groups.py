"""Groups of related tools as one class (seed 001's ``AbstractOpenFunction``).

Every public method of a :class:`ToolGroup` subclass becomes a tool, described by its
signature and docstring, unless the subclass overrides :meth:`ToolGroup.definitions` to describe
them by hand. :meth:`ToolGroup.call` runs a method and wraps whatever happens into a
:class:`Response`::

    class Delivery(ToolGroup):
        def orderProduct(self, productName: str, quantity: int = 1) -> TextItem: ...
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from toolrun.errors import InvalidDefinition, ToolNotFound
from toolrun.registry.builders import FunctionDefinition
from toolrun.registry.decorators import tool_from_callable
from toolrun.registry.formats import from_openai
from toolrun.registry.schema import CallableSpec, analyze_callable
from toolrun.registry.tool import Tool
from toolrun.response import Response

Definition = FunctionDefinition | Tool | Mapping[str, Any]


def invoke(
    func: Callable[..., Any], args: Mapping[str, Any], spec: CallableSpec | None
) -> Response:
    """Call ``func`` with JSON ``args`` (coerced through ``spec`` when given) and wrap the
    result or the exception into a Response. Coroutines run to completion with
    ``asyncio.run`` when no event loop is running; inside one, use :func:`ainvoke`."""
    try:
        result = spec.call(args) if spec is not None else func(**args)
        if inspect.isawaitable(result):
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                result = asyncio.run(_await(result))
            else:
                if inspect.iscoroutine(result):
                    result.close()
                raise RuntimeError("async tool called from a running event loop: use ainvoke")
        return Response.from_value(result)
    except Exception as exc:  # a tool's failure is a result, not a crash
        return Response.from_exception(exc)


async def ainvoke(
    func: Callable[..., Any], args: Mapping[str, Any], spec: CallableSpec | None
) -> Response:
    """:func:`invoke` for event loops: sync functions run in a thread, coroutines are awaited."""
    try:

        def call() -> Any:
            return spec.call(args) if spec is not None else func(**args)

        if inspect.iscoroutinefunction(func):
            result = call()
        else:
            result = await asyncio.to_thread(call)
        if inspect.isawaitable(result):
            result = await result
        return Response.from_value(result)
    except Exception as exc:
        return Response.from_exception(exc)


async def _await(value: Any) -> Any:
    return await value


class ToolGroup:
    """Base class of a group of tools; see the module docstring.

    ``namespace`` (class attribute) is the namespace the registry uses when none is given;
    the class docstring is the namespace's default description.
    """

    namespace: ClassVar[str | None] = None

    def definitions(self) -> Sequence[Definition] | None:
        """Override to describe the methods by hand (FunctionDefinitions, Tools or OpenAI
        ``tools[]`` entries, one per method, named like the method). ``None``: derive them."""
        return None

    def method_names(self) -> list[str]:
        """The public methods defined by subclasses (in definition order)."""
        names: dict[str, None] = {}
        for cls in reversed(type(self).__mro__):
            if cls is ToolGroup or not issubclass(cls, ToolGroup):
                continue
            for name, value in vars(cls).items():
                raw = value.__func__ if isinstance(value, staticmethod | classmethod) else value
                if not name.startswith("_") and inspect.isfunction(raw) and name not in _BASE_API:
                    names[name] = None
        return list(names)

    def tools(self, namespace: str | None = None) -> list[Tool]:
        """One Tool per exposed method."""
        namespace = namespace if namespace is not None else self.namespace
        defs = self.definitions()
        if defs is None:
            return [
                tool_from_callable(getattr(self, name), name=name, namespace=namespace)
                for name in self.method_names()
            ]
        tools = [_as_tool(d).with_changes(namespace=namespace) for d in defs]
        for t in tools:
            if not callable(getattr(self, t.name, None)) or t.name.startswith("_"):
                raise InvalidDefinition(
                    f"{type(self).__name__}.definitions() describes {t.name!r} "
                    "but the class has no public method of that name"
                )
        return tools

    def exposed(self) -> list[str]:
        """Names of the methods callable through :meth:`call`."""
        defs = self.definitions()
        return self.method_names() if defs is None else [t.name for t in map(_as_tool, defs)]

    def resolve_method(self, method_name: str) -> tuple[Callable[..., Any], CallableSpec | None]:
        """The bound method and its argument binder (None when the signature cannot be
        analysed; the method then gets the arguments as they are)."""
        if method_name not in self.exposed():
            raise ToolNotFound(
                f"{type(self).__name__} has no tool method {method_name!r}; "
                f"available: {', '.join(self.exposed()) or 'none'}"
            )
        method = getattr(self, method_name)
        cache: dict[str, CallableSpec | None] = vars(self).setdefault("_toolrun_specs", {})
        if method_name not in cache:
            try:
                cache[method_name] = analyze_callable(method)
            except InvalidDefinition:
                cache[method_name] = None
        return method, cache[method_name]

    def call(self, method_name: str, args: Mapping[str, Any] | None = None) -> Response:
        """Run a method; any return value or exception becomes a Response."""
        try:
            method, spec = self.resolve_method(method_name)
        except ToolNotFound as exc:
            return Response.from_exception(exc)
        return invoke(method, dict(args or {}), spec)


_BASE_API = frozenset(n for n in vars(ToolGroup) if not n.startswith("_"))


def _as_tool(definition: Definition) -> Tool:
    if isinstance(definition, Tool):
        return definition
    if isinstance(definition, FunctionDefinition):
        return definition.to_tool()
    if isinstance(definition, Mapping):
        return from_openai(definition)
    raise InvalidDefinition(
        f"definitions() returned {type(definition).__name__}: expected FunctionDefinition, "
        "Tool or an OpenAI tools[] entry"
    )
