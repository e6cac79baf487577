"""Every knob of the system, in one pydantic-settings object.

Environment variables use the prefix ``ORCH_``; nested groups use ``__`` (for example
``ORCH_WORKER__PREFETCH_MULTIPLIER=1``). Values also come from a ``.env`` file and from a secrets
directory (one file per setting, as Docker and Kubernetes mount them). Secrets are ``SecretStr``:
their repr is ``'**********'``, so they never reach logs, run records or Sentry by accident.

This package imports neither ``orchestrator`` nor ``workers``: it only describes configuration.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from config.urls import (
    BROKER_SCHEMES,
    CLUSTER_SCHEMES,
    REDIS_SCHEMES,
    STORE_SCHEMES,
    history_url_problem,
    url_problem,
    url_scheme,
)

SECRETS_DIR_ENV = "ORCH_SECRETS_DIR"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.ASCII)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _seconds(value: Any) -> Any:
    """A duration setting as seconds: a number, or ``500ms``, ``30s``, ``5m``, ``2h``, ``7d`` as in workflow
    files (this package imports no parser of ``orchestrator``)."""
    if not isinstance(value, str):
        return value
    if (match := _DURATION.match(value)) is None:
        raise ValueError("not a duration; write e.g. 30s, 12h, 7d or a number of seconds")
    return float(match[1]) * _UNIT_SECONDS[match[2] or "s"]


Duration = Annotated[float, BeforeValidator(_seconds)]
"""Seconds; the environment may say ``7d``, ``12h``, ``30m``, ``90s``, ``500ms`` or a number."""
WEEK = 7 * 86400.0


class WorkerSettings(BaseModel):
    """Worker processes: reliability defaults first (acks late, prefetch 1)."""

    concurrency: int | None = Field(default=None, ge=1, description="Pool size; default: number of CPUs.")
    pool: Literal["prefork", "threads", "solo", "gevent", "eventlet"] = "prefork"
    prefetch_multiplier: int = Field(default=1, ge=1)
    visibility_timeout: float = Field(
        default=7200.0,
        gt=0,
        description="Seconds before kombu redelivers an unacknowledged message: a hook's or a task's sent by name "
        "(a step message has no unacked copy: the run store's outbox and lease guard it).",
    )
    lease: float = Field(
        default=15.0,
        gt=1,
        description="Seconds a running step's claim lives without renewal; a dead worker's "
        "steps are re-dispatched after this.",
    )
    sweep_interval: float = Field(default=2.0, gt=0, description="Seconds between checks for expired claims.")
    result_expires: float = Field(default=7 * 86400.0, gt=0, description="Seconds Celery keeps task results.")
    max_tasks_per_child: int | None = Field(default=None, ge=1)
    max_memory_per_child: int | None = Field(default=None, ge=1, description="KiB.")
    task_events: bool = Field(
        default=False,
        description="Send Celery task events (task-sent/received/started/succeeded), for Flower. Off by "
        "default: on Redis each is a PUBLISH, and the worker's main process spends about 40% of its time "
        "sending them (bench/README.md).",
    )


class StepDefaults(BaseModel):
    """The lowest policy layer: what a step gets when neither it nor its workflow says."""

    queue: str = "default"
    timeout: float = Field(default=3600.0, gt=0, description="Hard time limit of one attempt, seconds.")
    soft_timeout: float | None = Field(default=None, gt=0)
    max_attempts: int = Field(default=1, ge=1)
    backoff: Literal["exponential", "fixed"] = "exponential"
    delay: float = Field(default=1.0, ge=0)
    max_delay: float = Field(default=300.0, ge=0)
    jitter: bool = True
    retry_on: list[str] = Field(default_factory=lambda: ["ConnectionError", "TimeoutError"])


class Scope(StrEnum):
    """What an API token may do; each scope includes the ones before it."""

    READ = "read"
    """Read runs, workflows and events."""
    SUBMIT = "submit"
    """Also start runs (the default scope of a token)."""
    ADMIN = "admin"
    """Also cancel, retry and replay."""

    def allows(self, needed: Scope) -> bool:
        order = list(Scope)
        return order.index(self) >= order.index(needed)


class ApiToken(BaseModel):
    """One ``name:token[:scope]`` entry of ``ORCH_API_TOKENS``: the name is recorded as who acted."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]+$", max_length=100)
    token: SecretStr
    scope: Scope = Scope.SUBMIT


class ApiSettings(BaseModel):
    """The HTTP API (``orchestrator api``)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="Larger request bodies get a 413.")
    max_wait: float = Field(default=60.0, gt=0, le=3600, description="Longest long-poll (`?wait=`) in seconds.")
    compile_at_start: bool = Field(
        default=True,
        description="Compile the plans of ORCH_WORKFLOWS_DIR's workflows as the API starts, so that no "
        "submit of one pays its compile (off: a directory of many big workflows starts faster).",
    )


class SentrySettings(BaseModel):
    """Error reporting to Sentry (on when ``ORCH_SENTRY_DSN`` is set): workers, beat and the API."""

    environment: str | None = Field(default=None, description="Sentry's environment tag (production, staging).")
    release: str | None = None
    traces_sample_rate: float = Field(default=0.0, ge=0, le=1)
    send_data: bool = Field(
        default=False, description="Send runs' params and steps' outputs with events (off: they never leave)."
    )
    scrub_keys: list[str] = Field(
        default_factory=lambda: ["password", "secret", "token", "api_key", "apikey", "authorization", "dsn", "cookie"],
        description="Values of keys containing one of these (any case) are scrubbed from every event.",
    )
    crons: bool = Field(default=True, description="Report schedules as Sentry Crons check-ins (the run's outcome).")


class LogSettings(BaseModel):
    """Structured logs (structlog): JSON lines unless stderr is a terminal."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: console on a terminal, JSON lines otherwise."
    )


class MetricsSettings(BaseModel):
    """Prometheus metrics of workers (the API serves its own on ``/metrics``)."""

    worker_port: int | None = Field(
        default=None, ge=1, le=65535, description="Serve a worker's metrics on this port (``--metrics-port``)."
    )
    worker_address: str = Field(
        default="0.0.0.0", description="Address a worker's metrics server listens on (Prometheus scrapes it)."
    )
    multiprocess_dir: Path | None = Field(
        default=None, description="prometheus-client's multiprocess directory for prefork pools (cleared at start)."
    )


class FlowerSettings(BaseModel):
    """Flower (``orchestrator flower``), always behind ``ORCH_FLOWER_BASIC_AUTH``."""

    port: int = Field(default=5555, ge=1, le=65535)
    address: str = "127.0.0.1"
    persistent: bool = True
    db: Path = Field(default=Path("flower.db"), description="Flower's state file with ``persistent``.")
    max_tasks: int = Field(default=10_000, ge=100, description="Tasks Flower keeps in memory.")


class UiSettings(BaseModel):
    """The web UI under ``/ui`` of ``orchestrator api``."""

    flower_url: str | None = Field(
        default=None, description="Flower's base URL; set, a step's task id links to `<flower_url>/task/<id>`."
    )
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30, description="How long a UI login lasts.")


class HistorySettings(BaseModel):
    """Durable run history in PostgreSQL (on when ``ORCH_HISTORY_URL`` is set; docs/history.md)."""

    export_in_api: bool = Field(
        default=True,
        description="`orchestrator api` runs the exporter in a background thread (a lock lets one process "
        "work at a time); false: run `orchestrator history export` instead.",
    )
    batch_size: int = Field(default=200, ge=1, le=5000, description="Finished runs written per transaction.")
    poll_interval: float = Field(
        default=1.0, gt=0, le=3600, description="Seconds the exporter waits when no finished run is waiting."
    )
    lock_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds the exporter's lock lives without renewal (renewed every batch): when an exporter "
        "dies, another takes over after this.",
    )
    migrate: Literal["auto", "check"] = Field(
        default="auto",
        description="At the start of `orchestrator api` and `history export`: auto upgrades the schema to "
        "this version's, check refuses to start until `orchestrator history migrate` has run.",
    )


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`get_settings` and pass it down explicitly."""

    model_config = SettingsConfigDict(
        env_prefix="ORCH_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        secrets_dir=os.environ.get(SECRETS_DIR_ENV) or None,
    )

    broker_url: str | None = Field(
        default=None, description="Celery broker (redis://, rediss://, sentinel://, amqp://). Unset: embedded Redis."
    )
    result_backend: str | None = Field(default=None, description="Celery result backend; default: the store.")
    store_url: str | None = Field(
        default=None,
        description="Redis holding run state (redis://, rediss://, sentinel://, or a cluster: "
        "redis+cluster://HOST:PORT,HOST:PORT); default: the broker when it is Redis.",
    )
    store_shards: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Shards of the run store on Redis Cluster (unused on one Redis): at most this many masters "
        "share the work. Fixed for the life of a store: changing it hides the runs already there.",
    )
    sentinel_master: str | None = Field(
        default=None, description="Name of the Redis master when the broker or store URL is sentinel://."
    )
    key_prefix: str = Field(default="orch", pattern=r"^[A-Za-z0-9_.:-]+$", description="Namespace of our Redis keys.")
    embedded_dir: Path = Field(
        default=Path.home() / ".local" / "state" / "orchestrator",
        description="Where the embedded Redis keeps its files.",
    )
    workflows_dir: Path | None = None
    task_modules: Annotated[list[str], NoDecode] = Field(default_factory=list)
    worker_app: str = Field(default="workers.app:app", description="Import path of the Celery app (`celery -A`).")
    worker_factory: str = Field(
        default="workers.app:create_app",
        description="Import path of the app factory the CLI calls with these settings.",
    )
    flower_basic_auth: SecretStr | None = None
    sentry_dsn: SecretStr | None = Field(default=None, description="Sentry's DSN; unset: nothing is sent.")
    history_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL keeping every finished run (postgresql://USER:PASSWORD@HOST:5432/DB); unset: "
        "runs live only in Redis.",
    )
    api_tokens: Annotated[tuple[ApiToken, ...], NoDecode] = Field(
        default=(), description="Comma-separated name:token[:scope] (scope read, submit (default) or admin)."
    )
    webhook_secrets: Annotated[dict[str, tuple[SecretStr, ...]], NoDecode] = Field(
        default_factory=dict,
        description="Comma-separated name:secret; two entries with one name are both valid (rotation).",
    )
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    defaults: StepDefaults = Field(default_factory=StepDefaults)
    api: ApiSettings = Field(default_factory=ApiSettings)
    sentry: SentrySettings = Field(default_factory=SentrySettings)
    log: LogSettings = Field(default_factory=LogSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    flower: FlowerSettings = Field(default_factory=FlowerSettings)
    ui: UiSettings = Field(default_factory=UiSettings)
    history: HistorySettings = Field(default_factory=HistorySettings)
    run_retention: Duration = Field(
        default=WEEK,
        ge=1,
        description="How long a finished run's keys stay in Redis (a workflow's `retention:` says otherwise for "
        "its runs); then the workers' janitor removes them (after the history export, with ORCH_HISTORY_URL).",
    )
    submission_ttl: Duration = Field(
        default=WEEK,
        ge=1,
        description="How long a submission's idempotency key (the API's `idempotency_key`, webhook deliveries, "
        "schedule ticks, sensor edges) answers with the run it started; a repeat after this starts a new run.",
    )
    idempotency_ttl: Duration = Field(
        default=WEEK,
        ge=1,
        description="How long the record of a step's `idempotency_key` (and the output it recorded) is kept; "
        "a delivery with the key after this runs the side effect again.",
    )

    @field_validator("task_modules", mode="before")
    @classmethod
    def _split_modules(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _parse_tokens(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        tokens = []
        scopes = [scope.value for scope in Scope]
        for position, entry in enumerate(filter(None, (p.strip() for p in value.split(","))), start=1):
            parts = entry.split(":")
            if len(parts) not in (2, 3) or not all(parts):
                raise ValueError(f"entry {position} is not name:token[:scope]")
            if len(parts) == 3 and parts[2] not in scopes:
                raise ValueError(f"entry {position}: the scope is not one of {', '.join(scopes)}")
            tokens.append({"name": parts[0], "token": parts[1], "scope": parts[2] if len(parts) == 3 else "submit"})
        names = [t["name"] for t in tokens]
        if len(set(names)) != len(names):
            raise ValueError("two tokens have the same name; give each its own (the name is recorded as who acted)")
        return tokens

    @field_validator("webhook_secrets", mode="before")
    @classmethod
    def _parse_secrets(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        secrets: dict[str, list[str]] = {}
        for position, entry in enumerate(filter(None, (p.strip() for p in value.split(","))), start=1):
            name, sep, secret = entry.partition(":")
            if not sep or not name or not secret:
                raise ValueError(f"entry {position} is not name:secret")
            secrets.setdefault(name, []).append(secret)
        return secrets

    @field_validator("flower_basic_auth")
    @classmethod
    def _check_basic_auth(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and ":" not in value.get_secret_value():
            raise ValueError("must be user:password")
        return value

    @field_validator("broker_url", "store_url", "result_backend")
    @classmethod
    def _check_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or (info.field_name == "result_backend" and url_scheme(value) not in REDIS_SCHEMES):
            return value  # a result backend of another kind is Celery's to check
        if info.field_name != "store_url" and url_scheme(value) in CLUSTER_SCHEMES:
            raise ValueError(
                "is a Redis Cluster, which Celery cannot use: a cluster holds the run store only "
                "(ORCH_STORE_URL); give the broker its own Redis or RabbitMQ"
            )
        allowed = STORE_SCHEMES if info.field_name == "store_url" else BROKER_SCHEMES
        if (problem := url_problem(value, allowed)) is not None:
            raise ValueError(problem)
        return value

    @field_validator("history_url")
    @classmethod
    def _check_history_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and (problem := history_url_problem(value.get_secret_value())) is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        if self.worker.visibility_timeout <= self.defaults.timeout:
            raise ValueError(
                f"ORCH_WORKER__VISIBILITY_TIMEOUT ({self.worker.visibility_timeout:g}s) must be longer than the "
                f"default step timeout ORCH_DEFAULTS__TIMEOUT ({self.defaults.timeout:g}s), or Redis redelivers "
                "hooks and tasks sent by name that are still running; raise the visibility timeout or lower the "
                "step timeout"
            )
        if self.worker.sweep_interval >= self.worker.lease:
            raise ValueError(
                f"ORCH_WORKER__SWEEP_INTERVAL ({self.worker.sweep_interval:g}s) must be shorter than "
                f"ORCH_WORKER__LEASE ({self.worker.lease:g}s)"
            )
        urls = [u for u in (self.broker_url, self.store_url) if u]
        if any(u.startswith("sentinel://") for u in urls) and not self.sentinel_master:
            raise ValueError("sentinel:// URLs need the master's name in ORCH_SENTINEL_MASTER")
        if self.store_clustered and self.broker_url is None:
            raise ValueError(
                "ORCH_STORE_URL is a Redis Cluster, which Celery cannot use as its broker: set ORCH_BROKER_URL "
                "to a Redis (redis://) or RabbitMQ (amqp://) of its own"
            )
        if self.broker_url and not self.store_url and url_scheme(self.broker_url) not in REDIS_SCHEMES:
            raise ValueError(
                f"run state needs Redis: ORCH_BROKER_URL is {url_scheme(self.broker_url)}://, so set "
                "ORCH_STORE_URL to a redis:// URL"
            )
        return self

    @property
    def embedded(self) -> bool:
        """True when no broker is configured: the embedded Redis is used."""
        return self.broker_url is None

    @property
    def history_enabled(self) -> bool:
        """True when ``ORCH_HISTORY_URL`` is set: finished runs are written to PostgreSQL."""
        return self.history_url is not None

    @property
    def store_clustered(self) -> bool:
        """True when the run store is a Redis Cluster (``redis+cluster://``)."""
        return self.store_url is not None and url_scheme(self.store_url) in CLUSTER_SCHEMES

    @property
    def resolved_store_url(self) -> str | None:
        """The Redis URL of the run store (None when embedded and not started yet)."""
        return self.store_url or self.broker_url


class InvalidSettings(ValueError):
    """Settings that do not load: one problem per setting, each naming it, never its value.

    Attributes:
        problems: ``ORCH_NAME: what is wrong`` lines.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


def setting_problems(exc: ValidationError) -> list[str]:
    """A pydantic error as one line per setting: the variable's name and what is wrong, no input values."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        loc = [str(part) for part in error["loc"]]
        problems.append(f"ORCH_{'__'.join(loc).upper()}: {message}" if loc else message)
    return problems


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment, ``.env`` and secrets.

    Raises:
        InvalidSettings: a setting does not parse or the settings contradict each other.
    """
    try:
        return Settings()
    except ValidationError as exc:
        raise InvalidSettings(setting_problems(exc)) from None
