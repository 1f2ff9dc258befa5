"""The in-process, namespaced registry (seed 001's ``OpenFunctionRegistry``).

A thin in-memory manager: it holds Tools with the callables that implement them, exports them
under OpenAI-safe names ``{namespace}{separator}{name}`` (``delivery_orderProduct``) and runs
calls by that name. Persistence belongs to the server's store, not here.
"""

from __future__ import annotations

import difflib
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from toolrun.errors import ArgumentsInvalid, InvalidDefinition, NotExecutable, ToolNotFound
from toolrun.registry.decorators import get_tool, tool_from_callable
from toolrun.registry.discovery import load_callable
from toolrun.registry.formats import openai_name, to_mcp, to_openai
from toolrun.registry.groups import ToolGroup, ainvoke, invoke
from toolrun.registry.runtimes import PythonRuntime
from toolrun.registry.schema import CallableSpec, analyze_callable, validate_arguments
from toolrun.registry.tool import Tool
from toolrun.response import Response


@dataclass(frozen=True)
class _Entry:
    name: str  # the exported name
    tool: Tool
    func: Callable[..., Any] | None
    spec: CallableSpec | None


def _spec(func: Callable[..., Any]) -> CallableSpec | None:
    try:
        return analyze_callable(func)
    except InvalidDefinition:  # hand-described callables may have unanalysable signatures
        return None


class Registry:
    """Namespaced tools and their callables; see the module docstring.

    ``separator`` joins namespace and name; exported names longer than ``max_name_length``
    are cut and suffixed with a short hash of the full name.
    """

    def __init__(self, *, separator: str = "_", max_name_length: int = 64) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]*", separator):
            raise InvalidDefinition(f"separator {separator!r} may only use letters, digits, _ -")
        if not 16 <= max_name_length <= 64:
            raise InvalidDefinition("max_name_length must be between 16 and 64")
        self.separator = separator
        self.max_name_length = max_name_length
        self._entries: dict[str, _Entry] = {}
        self._namespaces: dict[str, str] = {}
        self._loaded: dict[str, Callable[..., Any]] = {}  # imported runtime targets
        self._specs: dict[str, CallableSpec | None] = {}
        self._lock = threading.Lock()

    # -- registering ----------------------------------------------------------------------------

    def exported_name(self, tool: Tool) -> str:
        raw = f"{tool.namespace}{self.separator}{tool.name}" if tool.namespace else tool.name
        return openai_name(raw, self.max_name_length)

    def register(
        self,
        obj: Any,
        namespace: str | None = None,
        description: str = "",
        *,
        func: Callable[..., Any] | None = None,
    ) -> list[str]:
        """Register a function (``@tool``-decorated or not), a :class:`ToolGroup` instance, or a
        :class:`Tool` with the callable implementing it (``func``; without one, a Python
        runtime's target is imported at call time). Returns the exported names.

        Raises :class:`InvalidDefinition` when an exported name is taken; nothing is
        registered then.
        """
        entries: list[_Entry] = []
        if isinstance(obj, ToolGroup):
            namespace = namespace if namespace is not None else obj.namespace
            description = description or _first_line(type(obj).__doc__)
            for t in obj.tools(namespace):
                method, spec = obj.resolve_method(t.name)
                entries.append(_Entry("", t, method, spec))
        elif isinstance(obj, Tool):
            t = obj if namespace is None else obj.with_changes(namespace=namespace)
            entries.append(_Entry("", t, func, _spec(func) if func else None))
        elif callable(obj):
            found = get_tool(obj)
            if found is None:
                t = tool_from_callable(obj, namespace=namespace)
            else:
                t = found if namespace is None else found.with_changes(namespace=namespace)
            entries.append(_Entry("", t, obj, _spec(obj)))
        else:
            raise InvalidDefinition(
                f"cannot register {type(obj).__name__}: expected a function, a ToolGroup "
                "instance or a Tool"
            )
        return self._add(entries, namespace, description)

    def register_namespace(self, namespace: str, description: str, group: ToolGroup) -> list[str]:
        """Seed 001's ``registerOpenFunction(namespace, description, function)``."""
        return self.register(group, namespace, description)

    def _add(self, entries: list[_Entry], namespace: str | None, description: str) -> list[str]:
        with self._lock:
            named: dict[str, _Entry] = {}
            for entry in entries:
                name = self.exported_name(entry.tool)
                clash = self._entries.get(name) or named.get(name)
                if clash is not None:
                    raise InvalidDefinition(
                        f"exported name {name!r} of tool {_label(entry.tool)} is already used by "
                        f"tool {_label(clash.tool)}; register one of them under another "
                        "namespace or name"
                    )
                named[name] = _Entry(name, entry.tool, entry.func, entry.spec)
            self._entries.update(named)
            used = [e.tool.namespace for e in named.values() if e.tool.namespace]
            for ns in dict.fromkeys([namespace, *used] if namespace else used):
                if ns == namespace and description:
                    self._namespaces[ns] = description
                else:
                    self._namespaces.setdefault(ns, "")
            return list(named)

    def unregister(self, name: str) -> Tool:
        with self._lock:
            self._loaded.pop(name, None)
            self._specs.pop(name, None)
            return self._lookup(name, pop=True).tool

    # -- reading --------------------------------------------------------------------------------

    def _lookup(self, name: str, *, pop: bool = False) -> _Entry:
        entry = self._entries.pop(name, None) if pop else self._entries.get(name)
        if entry is None:
            close = difflib.get_close_matches(name, list(self._entries), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ToolNotFound(f"no function named {name!r} in the registry{hint}")
        return entry

    def get(self, name: str) -> Tool:
        """The Tool exported as ``name``; raises :class:`ToolNotFound`."""
        return self._lookup(name).tool

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)

    def tools(self) -> list[Tool]:
        return [e.tool for e in self._entries.values()]

    def namespaces(self) -> dict[str, str]:
        """Namespace -> description."""
        return dict(self._namespaces)

    def get_function_definitions(self) -> list[dict[str, Any]]:
        """The OpenAI ``tools`` list, under the exported names."""
        return [to_openai(e.tool, name=e.name) for e in self._entries.values()]

    def get_mcp_tools(self) -> list[dict[str, Any]]:
        """The MCP ``tools/list`` result's tools, under the exported names."""
        return [to_mcp(e.tool, name=e.name) for e in self._entries.values()]

    def namespace_overview(self) -> str:
        """A developer-message text listing the namespaces (seed 001's registry extension)."""
        if not self._namespaces:
            return "No tool namespaces are registered."
        lines = [f"- {ns}: {desc}" if desc else f"- {ns}" for ns, desc in self._namespaces.items()]
        return "You can use the tools of these namespaces:\n" + "\n".join(lines)

    # -- calling --------------------------------------------------------------------------------

    def _prepare(self, name: str, args: Any) -> tuple[_Entry, Callable[..., Any], dict[str, Any]]:
        entry = self._lookup(name)
        if isinstance(args, str | bytes):  # OpenAI sends tool-call arguments as a JSON string
            try:
                args = json.loads(args or "{}")
            except ValueError as exc:
                raise ArgumentsInvalid(f"arguments are not valid JSON: {exc}") from None
        args = {} if args is None else args
        if not isinstance(args, Mapping):
            raise ArgumentsInvalid(f"arguments must be an object, got {type(args).__name__}")
        merged = {**entry.tool.default_params, **args}
        validate_arguments(entry.tool.input_schema, merged)
        func = entry.func
        if func is None:
            runtime = entry.tool.runtime
            if not isinstance(runtime, PythonRuntime):
                kind = runtime.kind if runtime else "none"
                raise NotExecutable(
                    f"{name!r} has no in-process callable (runtime: {kind}); run it through "
                    "the executor"
                )
            func = self._loaded.get(name) or load_callable(entry.tool)
            self._loaded[name] = func
        return entry, func, merged

    def execute_function_call(self, name: str, args: Any = None) -> Response:
        """Run the function exported as ``name`` with ``args`` (an object or its JSON text)
        merged over the tool's ``default_params``. Never raises for a bad call: unknown
        names, invalid arguments and a raising function all give an ``isError`` Response."""
        try:
            entry, func, merged = self._prepare(name, args)
        except Exception as exc:
            return Response.from_exception(exc)
        return invoke(func, merged, self._spec_of(entry, func))

    async def aexecute_function_call(self, name: str, args: Any = None) -> Response:
        """:meth:`execute_function_call` for event loops (sync functions run in a thread)."""
        try:
            entry, func, merged = self._prepare(name, args)
        except Exception as exc:
            return Response.from_exception(exc)
        return await ainvoke(func, merged, self._spec_of(entry, func))

    def _spec_of(self, entry: _Entry, func: Callable[..., Any]) -> CallableSpec | None:
        if func is entry.func:
            return entry.spec
        if entry.name not in self._specs:
            self._specs[entry.name] = _spec(func)
        return self._specs[entry.name]


def _label(tool: Tool) -> str:
    return f"{tool.id!r}" + (f" (namespace {tool.namespace!r})" if tool.namespace else "")


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0].strip() if doc and doc.strip() else ""
