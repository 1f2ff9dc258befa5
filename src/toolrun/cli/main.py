"""The ``toolrun`` command. Errors print one readable line and exit non-zero."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

from toolrun.config import Settings
from toolrun.errors import ToolrunError

app = typer.Typer(
    help="toolrun: register, find and call tools for LLMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
T = TypeVar("T")

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (default: per-user).")
]


def fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def settings_for(data_dir: Path | None, **overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    try:
        return Settings(**values)
    except ValidationError as exc:  # every problem, in one line
        fail(f"invalid settings: {'; '.join(_problem(error) for error in exc.errors())}")
        raise


def _problem(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {message}" if where else message


def guarded(fn: Callable[[], T]) -> T:
    """Run a command body, turning toolrun errors into one line and exit status 1."""
    try:
        return fn()
    except ToolrunError as exc:
        fail(exc.message)
        raise
    except OSError as exc:
        fail(str(exc))
        raise


def run_async(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return guarded(lambda: asyncio.run(coro_fn()))


def emit(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@app.command()
def serve(
    demo: Annotated[bool, typer.Option("--demo", help="Register the demo tools.")] = False,
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="REST (and WebSocket) port [8000].")] = None,
    ws_port: Annotated[int | None, typer.Option(help="Seed-002 WebSocket port [8765].")] = None,
    data_dir: DataDir = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the REST API and the WebSocket (both ports answer every route)."""
    from toolrun.cli.serve import run

    settings = settings_for(
        data_dir, demo=demo or None, host=host, port=port, ws_port=ws_port, workers=workers
    )
    guarded(lambda: run(settings, log_level=log_level))


@app.command()
def gateway(
    api_key: Annotated[
        list[str] | None,
        typer.Option("--api-key", help="A key clients must send (repeat for more)."),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port [8000].")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Model map file (YAML or JSON).")
    ] = None,
    data_dir: DataDir = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve only the OpenAI-compatible gateway (/v1/chat/completions, /v1/models, /v1/logs).

    Upstreams: --config FILE, or TOOLRUN_LLM_BASE_URL and TOOLRUN_LLM_MODEL for one model.
    """
    from toolrun.gateway.app import run as run_gateway

    settings = settings_for(data_dir, host=host, port=port, workers=workers, gateway_config=config)
    guarded(lambda: run_gateway(settings, api_keys=api_key or [], log_level=log_level))


@app.command("ls")
def list_tools(
    filter_json: Annotated[
        str | None, typer.Option("--filter", help='Mongo-style filter, e.g. \'{"tags": "math"}\'.')
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """List tools (id, namespace, tags, description)."""
    from toolrun.cli.local import list_tools as do_list

    rows = guarded(lambda: do_list(settings_for(data_dir), filter_json))
    for row in rows:
        typer.echo(row)


@app.command()
def show(tool_id: str, data_dir: DataDir = None) -> None:
    """Show one tool as JSON (toolrun's own shape)."""
    from toolrun.cli.local import show_tool

    emit(guarded(lambda: show_tool(settings_for(data_dir), tool_id)))


@app.command()
def register(
    source: Annotated[
        str | None, typer.Argument(help="FILE.json (a tool or a list) or module:attr.")
    ] = None,
    mcp: Annotated[
        str | None,
        typer.Option("--mcp", help="Import every tool of an MCP server: URL or command line."),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="With --mcp: the namespace (tools become NS_<tool>).")
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="With a --mcp command: KEY=VALUE.")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Register tools from a JSON file or a Python object (function, @tool, ToolGroup), or
    import the tools of an MCP server (--mcp URL|command --namespace NS)."""
    if (source is None) == (mcp is None):
        fail("give FILE.json or module:attr, or --mcp URL|command (one of them)")
    if mcp is None and (namespace or env):
        fail("--namespace and --env go with --mcp")
    if mcp is not None:
        from toolrun.cli.mcp import register_server

        settings = settings_for(data_dir)
        ids = guarded(lambda: register_server(settings, mcp, namespace, env or []))
    else:
        from toolrun.cli.local import register_source

        ids = guarded(lambda: register_source(settings_for(data_dir), source or ""))
    for tool_id in ids:
        typer.echo(f"registered {tool_id}")


@app.command("mcp")
def mcp_stdio(
    demo: Annotated[bool, typer.Option("--demo", help="Register the demo tools.")] = False,
    filter_json: Annotated[
        str | None, typer.Option("--filter", help='Offer only these tools: \'{"tags": "math"}\'.')
    ] = None,
    data_dir: DataDir = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    log_level: Annotated[str, typer.Option(help="Log level (logs go to stderr).")] = "warning",
) -> None:
    """Serve the registry as an MCP server on stdin/stdout (calls run as jobs)."""
    from toolrun.cli.mcp import serve

    settings = settings_for(data_dir, demo=demo or None, workers=workers)
    guarded(lambda: serve(settings, filter_json, log_level))


@app.command()
def call(
    tool_id: str,
    pairs: Annotated[list[str] | None, typer.Argument(help="key=value arguments.")] = None,
    json_args: Annotated[str | None, typer.Option("--json", help="Arguments as JSON.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Call a tool and print its result (MCP CallToolResult). Exit 1 if it failed."""
    from toolrun.cli.local import call_tool, parse_arguments

    settings = settings_for(data_dir)
    arguments = guarded(lambda: parse_arguments(pairs or [], json_args))
    result = run_async(lambda: call_tool(settings, tool_id, arguments))
    emit(result)
    if result.get("isError"):
        raise typer.Exit(1)


@app.command()
def jobs(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    data_dir: DataDir = None,
) -> None:
    """List recent jobs."""
    from toolrun.cli.local import list_jobs

    for row in guarded(lambda: list_jobs(settings_for(data_dir), limit)):
        typer.echo(row)


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs run at once (default max(8, 4 x workers)).")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes for Python tools.")] = None,
    hostname: Annotated[
        str | None, typer.Option(help="Celery node name (default toolrun-PID@host).")
    ] = None,
    data_dir: DataDir = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Run jobs queued by API processes of the Celery executor (scale-out).

    Needs TOOLRUN_BROKER_URL (redis:// or amqp://), TOOLRUN_DATABASE_URL (the API's store)
    and, with RabbitMQ, TOOLRUN_EVENTS_URL (redis://). Stop with SIGTERM: running jobs finish.
    """
    from toolrun.cli.worker import run_worker

    settings = settings_for(data_dir, executor="celery", concurrency=concurrency, workers=workers)
    code = guarded(lambda: run_worker(settings, hostname=hostname, log_level=log_level))
    raise typer.Exit(code)


db_app = typer.Typer(help="The store (TOOLRUN_DATABASE_URL).", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None) -> None:
    """Migrate the store to the newest schema (idempotent); print the revision."""
    from toolrun.cli.worker import db_upgrade as do_upgrade

    revision = guarded(lambda: do_upgrade(settings_for(data_dir)))
    typer.echo(f"database at revision {revision}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
