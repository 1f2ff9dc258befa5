"""How a tool runs: one small model per runtime kind, a discriminated union on ``kind``.

Runtimes are data; the code that executes each kind lives in ``toolrun.execution.runtimes``.
"""

from __future__ import annotations

import ast
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_TARGET_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


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
    command: list[str] = Field(min_length=1, description="argv[0..]: program and fixed arguments.")
    mode: Literal["stdin_json", "argv"] = "stdin_json"
    args: list[str] = Field(default_factory=list, description="argv templates (mode 'argv').")
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")

    @field_validator("command", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            import shlex

            return shlex.split(value)
        return value


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


Runtime = Annotated[
    PythonRuntime | CommandRuntime | HttpRuntime | CodeRuntime | ContainerRuntime,
    Field(discriminator="kind"),
]
RUNTIME_KINDS = ("python", "command", "http", "code", "container")
