"""Auto-discovery: every public function of a package or of a folder of ``.py`` files is a tool.

A folder is imported as a synthetic package whose name is derived from the folder's absolute
path (:func:`package_name_for_folder`), so a target like ``toolrun_ext_functions_1a2b3c4d5e.
utilities:compress_files`` means the same module in every process. A process makes it
importable with :func:`mount_folder`; discovered tools record their folder in
``metadata["source_folder"]``, and :func:`load_callable` mounts it before importing.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import pkgutil
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from toolrun.errors import InvalidDefinition, NotExecutable
from toolrun.registry.decorators import get_tool, tool_from_callable
from toolrun.registry.runtimes import PythonRuntime
from toolrun.registry.tool import Tool

SOURCE_FOLDER = "source_folder"
_PREFIX = "toolrun_ext_"


def package_name_for_folder(folder: str | Path) -> str:
    """The stable synthetic package name of a folder (same path, same name, any process)."""
    path = Path(folder).resolve()
    slug = re.sub(r"\W", "_", path.name.lower())[:32] or "root"
    digest = hashlib.sha256(str(path).encode("utf-8")).hexdigest()[:10]
    return f"{_PREFIX}{slug}_{digest}"


def mount_folder(folder: str | Path) -> str:
    """Make ``<folder>/<module>.py`` importable as ``<package>.<module>``; returns the package
    name. Idempotent; the folder's own ``__init__.py``, if any, is not run."""
    path = Path(folder).resolve()
    if not path.is_dir():
        raise InvalidDefinition(f"{str(folder)!r} is not a folder")
    name = package_name_for_folder(path)
    if name not in sys.modules:
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(path)]
        sys.modules[name] = importlib.util.module_from_spec(spec)
    return name


def import_target(target: str, source_folder: str | None = None) -> Callable[..., Any]:
    """The callable a ``PythonRuntime`` target (``pkg.module:Qual.name``) points at, mounting
    ``source_folder`` first when given."""
    if source_folder:
        mount_folder(source_folder)
    module_name, _, qualname = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise NotExecutable(f"cannot import {target}: {exc}") from exc
    if not callable(obj):
        raise NotExecutable(f"{target} is not callable")
    return obj  # type: ignore[no-any-return]


def load_callable(tool: Tool) -> Callable[..., Any]:
    """The function behind a tool with a Python runtime, for in-process use (the
    :class:`~toolrun.registry.registry.Registry`); worker processes load targets with
    :func:`toolrun.execution.worker.load_target`, which also binds JSON arguments."""
    if not isinstance(tool.runtime, PythonRuntime):
        raise NotExecutable(f"tool {tool.id!r} has no Python runtime")
    folder = tool.metadata.get(SOURCE_FOLDER)
    return import_target(tool.runtime.target, folder if isinstance(folder, str) else None)


def discover(package_or_folder: str | Path) -> list[Tool]:
    """Tools for every public function defined in the modules of a package (dotted name), a
    module, a folder of ``.py`` files or one ``.py`` file.

    A :class:`~pathlib.Path`, or a string with a path separator, ending in ``.py`` or naming an
    existing folder, is a path; any other string is a module name. Namespace = module name
    relative to the package or folder; tool name = function name. Modules and functions
    starting with ``_`` are skipped, and ``__all__`` is honoured. ``@tool``-decorated functions
    keep their Tool.
    """
    target = package_or_folder
    if isinstance(target, Path) or _looks_like_path(target):
        return _discover_path(Path(target))
    root = _import(str(target))
    modules: list[tuple[str, ModuleType]] = [(root.__name__.rpartition(".")[2], root)]
    if hasattr(root, "__path__"):
        modules += _walk(root.__path__, root.__name__)
    return _tools(modules, None)


def _looks_like_path(text: str) -> bool:
    seps = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    return any(sep in text for sep in seps) or text.endswith(".py") or Path(text).is_dir()


def _discover_path(path: Path) -> list[Tool]:
    path = path.resolve()
    if path.is_file() and path.suffix == ".py":
        package = mount_folder(path.parent)
        module = _import(f"{package}.{path.stem}")
        return _tools([(path.stem, module)], path.parent)
    if not path.is_dir():
        raise InvalidDefinition(f"{str(path)!r} is neither a folder nor a .py file")
    package = mount_folder(path)
    return _tools(_walk([str(path)], package), path)


def _walk(search_path: Any, package: str) -> list[tuple[str, ModuleType]]:
    found = []
    names = sorted(
        info.name
        for info in pkgutil.walk_packages(search_path, prefix=package + ".", onerror=_raise)
    )
    for name in names:
        relative = name.removeprefix(package + ".")
        if any(part.startswith("_") for part in relative.split(".")):
            continue
        found.append((relative, _import(name)))
    return found


def _raise(name: str) -> None:
    raise InvalidDefinition(f"cannot import package {name!r} during discovery")


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except InvalidDefinition:
        raise
    except Exception as exc:
        raise InvalidDefinition(f"cannot import {name!r}: {type(exc).__name__}: {exc}") from exc


def _tools(modules: list[tuple[str, ModuleType]], folder: Path | None) -> list[Tool]:
    tools: list[Tool] = []
    for namespace, module in modules:
        public = getattr(module, "__all__", None)
        for name, obj in list(vars(module).items()):
            if name.startswith("_") or not inspect.isfunction(obj):
                continue
            if obj.__module__ != module.__name__ or (public is not None and name not in public):
                continue  # imported from elsewhere, or not exported
            found = get_tool(obj)
            tool = found or tool_from_callable(obj, namespace=namespace)
            changes: dict[str, Any] = {}
            if tool.namespace is None:
                changes["namespace"] = namespace
            if folder is not None:
                changes["metadata"] = {**tool.metadata, SOURCE_FOLDER: str(folder)}
            tools.append(tool.with_changes(**changes) if changes else tool)
    seen: dict[str, str] = {}
    for tool in tools:
        if tool.id in seen:
            raise InvalidDefinition(
                f"two discovered tools share the id {tool.id!r} (in {seen[tool.id]} and "
                f"{tool.namespace}): the store keys tools by id, so give one of them another "
                "name with @tool(name=...)"
            )
        seen[tool.id] = str(tool.namespace)
    return tools
