"""One runner per runtime kind (see :mod:`toolrun.registry.runtimes` for the data side)."""

from toolrun.execution.runtimes.base import RuntimeRunner
from toolrun.execution.runtimes.command import CommandRunner
from toolrun.execution.runtimes.http import HttpRunner
from toolrun.execution.runtimes.python import InlinePythonRunner, ProcessPythonRunner

__all__ = [
    "CommandRunner",
    "HttpRunner",
    "InlinePythonRunner",
    "ProcessPythonRunner",
    "RuntimeRunner",
]
