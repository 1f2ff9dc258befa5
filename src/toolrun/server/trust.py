"""What a remote client (REST, an external registry) may not decide about a tool.

Trust is the operator's: a tool runs inside the API process only with ``isolation="inline"``,
and that is granted at start-up (``--demo``, discovery) or with ``toolrun register`` on the
server's own data directory, never over the network. For the same reason a remote write may
not point a tool at a folder to import code from (``metadata.source_folder``), nor change the
runtime or policy of a tool that is already trusted.

Code and command tools that arrive over the network run in the sandbox tier:
:func:`remote_defaults` stores ``isolation: "sandbox"`` when the write leaves it unset, and a
remote write may not ask for ``process`` (a plain child process on the host) for a command it
sets or changes. Nor may it give a tool the server's environment variables or secrets
(``policy.env``, ``policy.secrets``), or limits above the server's maxima
(:func:`check_limits`).

An ``mcp`` tool with a ``url`` is like an ``http`` tool (it only sends the arguments to that
server), so a remote client may register one. One with a ``command`` starts that program on
the host, outside any sandbox, with an environment of the tool's choosing: only the operator
may register or change it (``toolrun register --mcp``); remote writes may change its other
fields while the runtime stays as it is.
"""

from __future__ import annotations

from collections.abc import Callable

from toolrun.config import SandboxSettings
from toolrun.errors import InvalidDefinition, NotPermitted
from toolrun.registry.discovery import SOURCE_FOLDER
from toolrun.registry.runtimes import CodeRuntime, CommandRuntime, McpRuntime, PythonRuntime
from toolrun.registry.tool import Tool

OPERATOR_ONLY = (
    "only the operator can grant that: register the tool at start-up "
    "(TOOLRUN_FUNCTIONS_DIRS / TOOLRUN_FUNCTIONS_PACKAGES) or with `toolrun register` "
    "on the server's data directory"
)


def remote_defaults(new: Tool, current: Tool | None = None) -> Tool:
    """``new`` with the sandbox tier filled in for code or a command that a remote write sets."""
    sandboxed_kinds = (CommandRuntime, CodeRuntime)
    if not isinstance(new.runtime, sandboxed_kinds) or new.policy.isolation is not None:
        return new
    if current is not None and current.runtime == new.runtime:
        isolation = current.policy.isolation  # unchanged runtime: its tier stays as it was
    else:
        isolation = "sandbox"
    if isolation is None:
        return new
    return new.with_changes(policy=new.policy.model_copy(update={"isolation": isolation}))


def check_python_target(
    new: Tool,
    current: Tool | None,
    allowed_modules: list[str],
    is_registered: Callable[[str], bool],
) -> None:
    """A ``python`` runtime names code in the server's environment (``os:system`` would do):
    a remote write may only name a function of an allowed module, or one that a tool in the
    registry already runs (the operator registered it, or allowed it earlier)."""
    runtime = new.runtime
    if not isinstance(runtime, PythonRuntime):
        return
    if current is not None and current.runtime == runtime:
        return
    module = runtime.target.partition(":")[0]
    if any(module == m or module.startswith(m + ".") for m in allowed_modules):
        return
    if is_registered(runtime.target):
        return
    raise NotPermitted(
        f"python target {runtime.target!r} is not a function this server offers: remote "
        "clients may name functions of TOOLRUN_REMOTE_PYTHON_MODULES or of tools already "
        "registered; for untrusted code, use a code runtime (it runs in the sandbox tier); "
        + OPERATOR_ONLY
    )


def check_limits(tool: Tool, sandbox: SandboxSettings) -> None:
    """Refuse (422) sandbox limits above what the server allows any call."""
    asked = {
        "memory_mb": (tool.policy.memory_mb, sandbox.max_memory_mb, "MAX_MEMORY_MB"),
        "output_bytes": (tool.policy.output_bytes, sandbox.max_output_bytes, "MAX_OUTPUT_BYTES"),
    }
    for name, (value, ceiling, setting) in asked.items():
        if value is not None and value > ceiling:
            raise InvalidDefinition(
                f"policy.{name} {value} is above this server's maximum {ceiling} "
                f"(TOOLRUN_SANDBOX__{setting})"
            )


def check_remote_write(
    new: Tool, current: Tool | None = None, sandbox: SandboxSettings | None = None
) -> None:
    """Raise :class:`NotPermitted` (403) when a remote write would grant trust, and
    :class:`InvalidDefinition` (422) for limits above ``sandbox``'s maxima."""
    if sandbox is not None:
        check_limits(new, sandbox)
    if isinstance(new.runtime, CommandRuntime) and new.isolation == "process":
        unchanged = (
            current is not None
            and current.runtime == new.runtime
            and current.isolation == "process"
        )
        if not unchanged:
            raise NotPermitted(
                f"{new.id} is a command registered over the network, so it runs in the "
                "sandbox tier (isolation 'sandbox'); running it as a plain host process is "
                + OPERATOR_ONLY
            )
    check_mcp_command(new, current)
    was_trusted = current is not None and current.policy.trusted
    if new.policy.trusted and not was_trusted:
        raise NotPermitted(
            f"isolation 'inline' runs {new.id} inside the API process; " + OPERATOR_ONLY
        )
    if (
        was_trusted
        and current is not None
        and (new.runtime != current.runtime or new.policy != current.policy)
    ):
        raise NotPermitted(
            f"{new.id} is trusted (runs inside the API process), so its runtime and policy "
            "cannot be changed remotely; " + OPERATOR_ONLY
        )
    for field in ("env", "secrets"):
        before = getattr(current.policy, field) if current is not None else []
        if getattr(new.policy, field) != before:
            what = "environment variables" if field == "env" else "secrets"
            raise NotPermitted(
                f"policy.{field} hands the server's {what} to the tool's code; " + OPERATOR_ONLY
            )
    old_folder = current.metadata.get(SOURCE_FOLDER) if current is not None else None
    if new.metadata.get(SOURCE_FOLDER) != old_folder:
        raise NotPermitted(
            f"metadata.{SOURCE_FOLDER} says where code is imported from; " + OPERATOR_ONLY
        )


def check_mcp_command(new: Tool, current: Tool | None) -> None:
    """A stdio MCP server is a program started on the host: the operator's to register."""
    runtime = new.runtime
    if not isinstance(runtime, McpRuntime) or runtime.command is None:
        return
    if current is not None and current.runtime == runtime:
        return
    raise NotPermitted(
        f"{new.id} starts a stdio MCP server ({runtime.command[0]}) on the host, outside the "
        "sandbox; remote clients may import MCP servers by url; " + OPERATOR_ONLY
    )
