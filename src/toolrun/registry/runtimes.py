"""How a tool runs: one small model per runtime kind, a discriminated union on ``kind``.

Runtimes are data; the code that executes each kind lives in ``toolrun.execution.runtimes``.
"""

from __future__ import annotations

import ast
import re
import shlex
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

_TARGET_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def _split_command(value: Any) -> Any:
    """A command given as one string is split the way a shell would split it."""
    return shlex.split(value) if isinstance(value, str) else value


# argv of a command or stdio server, a string split; min_length belongs to the list itself
Argv = Annotated[list[str], Field(min_length=1), BeforeValidator(_split_command)]


class _RuntimeBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PythonRuntime(_RuntimeBase):
    """A Python callable found by import path ``pkg.module:function`` (or ``:Class.method``)."""

    kind: Literal["python"] = "python"
    target: str = Field(description="Import path, e.g. 'toolrun.demo.tools:weather_lookup'.")

    @field_validator("target")
    @classmethod
    def _check_target(cls, value: str) -> str:
        if not _TARGET_RE.match(value):
            raise ValueError("target must look like 'package.module:function'")
        return value


class CommandRuntime(_RuntimeBase):
    """A script or binary.

    ``mode="stdin_json"``: the arguments go to stdin as one JSON object and the result is read
    from stdout as JSON (plain text when stdout is not JSON). ``mode="argv"``: each element of
    ``args`` is a template formatted with the arguments (``"--value={value}"``).
    """

    kind: Literal["command"] = "command"
    command: Argv = Field(description="argv[0..]: program and fixed arguments.")
    mode: Literal["stdin_json", "argv"] = "stdin_json"
    args: list[str] = Field(default_factory=list, description="argv templates (mode 'argv').")
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")


class HttpAuth(_RuntimeBase):
    """A credential taken from settings by name at call time; never stored in the tool."""

    secret: str = Field(description="Name in TOOLRUN_SECRETS__<NAME>.")
    scheme: Literal["bearer", "header", "query"] = "bearer"
    name: str = Field(default="Authorization", description="Header or query parameter name.")


class HttpRuntime(_RuntimeBase):
    """An HTTP endpoint. ``url`` may hold ``{arg}`` placeholders filled from the arguments;
    the remaining arguments go in a JSON body (or the query string for GET/DELETE)."""

    kind: Literal["http"] = "http"
    url: str = Field(pattern=r"^https?://")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    auth: HttpAuth | None = None

    @field_validator("headers")
    @classmethod
    def _no_inline_credentials(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if key.lower() in ("authorization", "proxy-authorization", "x-api-key", "cookie"):
                raise ValueError(
                    f"header {key!r} would store a credential in the tool; "
                    "use auth: {secret: NAME} and TOOLRUN_SECRETS__NAME instead"
                )
        return value


class CodeRuntime(_RuntimeBase):
    """Python source stored with the tool. ``entrypoint`` is called with the arguments as
    keyword arguments and its return value is the result. Code runs in the sandbox tier only:
    it arrives over the API, so nothing vouches for it."""

    kind: Literal["code"] = "code"
    source: str = Field(min_length=1, max_length=1_000_000, description="Python source.")
    entrypoint: str = Field(default="main", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @model_validator(mode="after")
    def _compiles(self) -> CodeRuntime:
        try:
            tree = ast.parse(self.source, filename="<tool source>")
        except SyntaxError as exc:
            raise ValueError(f"source does not compile: line {exc.lineno}: {exc.msg}") from None
        defined = {
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        if self.entrypoint not in defined:
            raise ValueError(
                f"source defines no top-level function {self.entrypoint!r} (the entrypoint)"
            )
        return self


class ContainerRuntime(_RuntimeBase):
    """A container image run with docker or podman: the arguments go to stdin as JSON and the
    result is read from stdout, as for ``command`` in ``stdin_json`` mode."""

    kind: Literal["container"] = "container"
    image: str = Field(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
    command: list[str] = Field(default_factory=list, description="Overrides the entrypoint args.")
    engine: Literal["auto", "docker", "podman"] = "auto"


_STEP_ID = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
MAX_CHAIN_STEPS = 100


def chain_references(value: Any) -> list[list[str]]:
    """Every ``{"$ref": "a.b.c"}`` inside ``value`` (arguments or output of a chain), split
    into path parts."""
    found: list[list[str]] = []
    if isinstance(value, dict):
        if set(value) == {"$ref"} and isinstance(value["$ref"], str):
            found.append(value["$ref"].split("."))
        else:
            for item in value.values():
                found.extend(chain_references(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(chain_references(item))
    return found


class ChainStep(_RuntimeBase):
    """One call of a chain. Any value in ``arguments`` may be ``{"$ref": "input.<name>..."}``
    (the chain's own arguments) or ``{"$ref": "steps.<id>..."}`` (an earlier step's value, or
    a key/index path into it); a step starts when every step it refers to (and every step in
    ``after``) has finished, so steps without such links run in parallel."""

    id: str = Field(pattern=_STEP_ID)
    tool: str = Field(min_length=1, max_length=256, description="Id of the tool to call.")
    arguments: dict[str, Any] = Field(default_factory=dict)
    after: list[str] = Field(default_factory=list, description="Steps to wait for as well.")

    def needs(self) -> set[str]:
        """The steps this one waits for."""
        refs = {parts[1] for parts in chain_references(self.arguments) if parts[0] == "steps"}
        return refs | set(self.after)


class ChainRuntime(_RuntimeBase):
    """A stored workflow: a DAG of calls of other registered tools, with the outputs of steps
    mapped into the inputs of later ones. ``output`` (any JSON with ``$ref`` values) is the
    chain's result; without it, the value of the last step listed."""

    kind: Literal["chain"] = "chain"
    steps: list[ChainStep] = Field(min_length=1, max_length=MAX_CHAIN_STEPS)
    output: Any = None

    @model_validator(mode="after")
    def _well_formed(self) -> ChainRuntime:
        ids = [step.id for step in self.steps]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"step ids must be unique; repeated: {', '.join(duplicates)}")
        known = set(ids)
        places = [(f"step {s.id!r}", s.arguments) for s in self.steps] + [("output", self.output)]
        for where, value in places:
            for parts in chain_references(value):
                if parts[0] not in ("input", "steps") or len(parts) < 2 or "" in parts:
                    raise ValueError(
                        f"{where}: $ref {'.'.join(parts)!r} must be 'input.<name>[...]' or "
                        "'steps.<id>[...]'"
                    )
                if parts[0] == "steps" and parts[1] not in known:
                    raise ValueError(f"{where}: $ref names no step {parts[1]!r}")
        for step in self.steps:
            unknown = sorted(set(step.after) - known)
            if unknown:
                raise ValueError(f"step {step.id!r}: 'after' names no step {unknown[0]!r}")
        cycle = _cycle({step.id: step.needs() for step in self.steps})
        if cycle:
            raise ValueError("the steps form a cycle: " + " -> ".join(cycle))
        return self


def _cycle(needs: dict[str, set[str]]) -> list[str]:
    """A dependency cycle among the steps (as a path), or ``[]``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for other in sorted(needs[node]):
            if state.get(other) == 1:
                return [*path[path.index(other) :], other]
            if other not in state:
                found = visit(other)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for node in needs:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


class McpRuntime(_RuntimeBase):
    """A tool of an MCP server: ``url`` (Streamable HTTP) or ``command`` (a server spoken to
    over stdio, in ``cwd``, with ``env`` added to a minimal environment), and the server's
    name ``tool``. Sessions stay open between calls (``toolrun.execution.runtimes.mcp``)."""

    kind: Literal["mcp"] = "mcp"
    tool: str = Field(min_length=1, max_length=256, description="The tool's name on the server.")
    url: str | None = Field(default=None, pattern=r"^https?://", max_length=2048)
    command: Argv | None = Field(default=None, description="argv of a stdio MCP server.")
    env: dict[str, str] = Field(default_factory=dict, description="stdio: extra environment.")
    cwd: str | None = Field(default=None, description="stdio: the working directory.")

    @model_validator(mode="after")
    def _one_transport(self) -> McpRuntime:
        if (self.url is None) == (self.command is None):
            raise ValueError("give exactly one of url (Streamable HTTP) or command (stdio)")
        if self.url is not None and (self.env or self.cwd):
            raise ValueError("env and cwd apply to a stdio server (command), not to a url")
        return self


Runtime = Annotated[
    PythonRuntime
    | CommandRuntime
    | HttpRuntime
    | CodeRuntime
    | ContainerRuntime
    | ChainRuntime
    | McpRuntime,
    Field(discriminator="kind"),
]
RUNTIME_KINDS = ("python", "command", "http", "code", "container", "chain", "mcp")
