"""One settings object for the Dagster resources, the CLI and (later) the API.

Every field is read from an environment variable prefixed ``BATON_``; nested groups use a
double underscore (``BATON_SENSORS__APPROVAL_INTERVAL_SECONDS``). The table in README.md lists
them all.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestration_defs.language.template_limits import TemplateLimits

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_LIBRARY = PACKAGE_ROOT / "orchestration_defs" / "library"


def _default_data_dir() -> Path:
    # In a checkout (editable install) the data folder sits in the project, next to
    # workspace.yaml; an installed wheel has no project folder, so use the user's home.
    if (PACKAGE_ROOT / "workspace.yaml").exists():
        return PACKAGE_ROOT / "data"
    return Path.home() / ".baton"


class DagsterSettings(BaseModel):
    """Where Baton finds Dagster and how it names its code location."""

    home: Path | None = Field(
        default=None, description="DAGSTER_HOME to use; default <data_dir>/dagster."
    )
    location_name: str = Field(default="baton", description="Code location name.")
    ui_url: str = Field(
        default="http://127.0.0.1:3000", description="Base URL of the Dagster UI, for links."
    )


# Dagster's sensor daemon loops every 5 s and skips a sensor whose last tick began less than
# its interval ago: an interval of exactly 5 s is met on every other loop only (a tick every
# ~10 s, measured by bench/resume_latency.py). Below 5 s a sensor ticks on every loop.
EVERY_DAEMON_LOOP = 4


class SensorSettings(BaseModel):
    """How often Baton's sensors look for work (Dagster's daemon ticks at most every 5 s)."""

    approval_interval_seconds: int = Field(
        EVERY_DAEMON_LOOP, ge=1, description="Decided approvals no process launched -> resume."
    )
    timeout_interval_seconds: int = Field(30, ge=1, description="Expired approvals.")
    claim_lease_seconds: float = Field(
        60,
        gt=0,
        description="How long a claimed launch may stay unstarted before a sensor takes it "
        "over: a decision's resume, a webhook's fast path, a compensation, a reaper retry whose "
        "request was lost (a failed launch hands it back at once).",
    )
    step_lease_seconds: float = Field(
        90,
        gt=0,
        description="A running step attempt whose heartbeat is older than this is failed by the "
        "reaper as orphaned (its run worker is presumed dead).",
    )
    heartbeat_seconds: float = Field(
        20,
        gt=0,
        description="How often a running agent call renews its step's lease (one UPDATE each); "
        "keep it well under step_lease_seconds.",
    )
    reaper_interval_seconds: int = Field(
        10, ge=1, description="How often the reaper looks for orphaned step attempts."
    )


class ChildrenSettings(BaseModel):
    """Sub-orchestrations: how deep they nest, how often the safety net looks."""

    max_depth: int = Field(
        5, ge=1, le=50, description="Levels of child runs below a root run (checked at load too)."
    )
    sensor_interval_seconds: int = Field(
        EVERY_DAEMON_LOOP,
        ge=1,
        description="How often the children sensor launches children and resumes parents "
        "that no process launched.",
    )


class ApiSettings(BaseModel):
    """Where Baton's HTTP API listens."""

    host: str = Field(default="127.0.0.1", description="Interface the API binds to.")
    port: int = Field(default=8080, ge=1, le=65535, description="Port of the API.")
    prewarm: bool = Field(
        default=True,
        description="Start the code server and the run launcher's zygote when the API starts, "
        "so the first resumed decision is as fast as the next.",
    )
    launch_per_minute: int = Field(
        default=30, ge=1, description="Runs one token may launch per minute (burst included)."
    )
    decide_per_minute: int = Field(
        default=60, ge=1, description="Approval decisions one token may post per minute."
    )
    events_poll_seconds: float = Field(
        default=0.5, gt=0, le=10, description="How often an event stream looks for new events."
    )
    heartbeat_seconds: float = Field(
        default=15, gt=0, le=300, description="Idle time before an event stream sends a comment."
    )
    events_settle_seconds: float = Field(
        default=5,
        gt=0,
        le=300,
        description="How long an event stream waits for a gap in the event sequence to fill "
        "(a transaction still committing) before taking it for a rolled-back one.",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest request body on every route (webhooks: webhooks.max_body_bytes); "
        "larger ones get 413, with or without Content-Length.",
    )
    max_json_depth: int = Field(
        default=64, ge=2, le=500, description="Deepest nesting of a JSON request body."
    )
    max_string_chars: int = Field(
        default=64 * 1024,
        ge=1,
        description="Longest string (or object key) in launch inputs and decision changes.",
    )
    max_list_items: int = Field(
        default=10_000,
        ge=1,
        description="Most items of one list (or keys of one object) in inputs and changes.",
    )
    max_input_depth: int = Field(
        default=32, ge=1, le=500, description="Deepest nesting of one input or change value."
    )
    max_inputs_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="Largest launch inputs (and decision changes) as JSON, all values together.",
    )


class WebhookSettings(BaseModel):
    """Limits of inbound webhooks and the retry policy of outbound deliveries."""

    max_body_bytes: int = Field(
        256 * 1024, ge=1024, description="Largest inbound webhook body; larger ones get 413."
    )
    tolerance_seconds: int = Field(
        300, ge=1, description="How far a webhook-timestamp may be from now, either way."
    )
    sensor_interval_seconds: int = Field(
        EVERY_DAEMON_LOOP,
        ge=1,
        description="How often the webhook sensor turns inbox rows into runs.",
    )
    fast_path: bool = Field(
        True,
        description="The API process that accepted a webhook starts its runs at once; the "
        "sensor only launches what it did not (off: every run waits for a sensor tick).",
    )
    delivery_interval_seconds: int = Field(
        EVERY_DAEMON_LOOP,
        ge=1,
        description="How often the delivery sensor sends pending deliveries.",
    )
    delivery_timeout_seconds: float = Field(
        5.0, gt=0, le=60, description="Timeout of one outbound delivery request."
    )
    delivery_max_attempts: int = Field(
        5, ge=1, le=50, description="Attempts before a delivery is recorded failed."
    )
    delivery_backoff_seconds: float = Field(
        10.0, ge=0, description="Wait before the second attempt; doubles after each failure."
    )


class SandboxSettings(BaseModel):
    """The function-agent sandbox (docs/agents.md)."""

    allow_weak: bool = Field(
        default=False,
        description="Run function agents even where a kernel layer of their sandbox (user "
        "and network namespaces, Landlock, seccomp) is missing; by default they are refused.",
    )
    unavailable: str = Field(
        default="",
        description="Sandbox layers to treat as missing, separated by ',' (user_ns, net_ns, "
        "pid_ns, landlock, seccomp): to test the refusal, or where detection misleads.",
    )


class LimitSettings(BaseModel):
    """Bounds of template rendering (YAML limits are fixed, docs/orchestration-language.md)."""

    template_max_chars: int = Field(
        2_000_000, ge=10_000, description="Largest rendered value or intermediate string."
    )
    template_max_total_chars: int = Field(
        20_000_000, ge=10_000, description="Characters one render may produce in all."
    )
    template_max_iterations: int = Field(
        100_000, ge=100, description="Loop items, calls and operations in one render."
    )
    template_seconds: float = Field(
        10, gt=0, le=3600, description="Time of one render (a step's own timeout if sooner)."
    )

    def templates(self) -> TemplateLimits:
        """The limits in the language's terms."""
        return TemplateLimits(
            max_chars=self.template_max_chars,
            max_total_chars=self.template_max_total_chars,
            max_iterations=self.template_max_iterations,
            max_seconds=self.template_seconds,
        )


class StepSettings(BaseModel):
    """How a step's agent call survives faults (``BATON_STEPS__*``)."""

    completion_retry_seconds: float = Field(
        120.0,
        ge=0,
        description="How long the write of an agent's answer is retried (with backoff) while "
        "the database is unreachable, so an outage never discards an answer already paid for.",
    )
    cancel_grace_seconds: float = Field(
        10.0,
        gt=0,
        description="How long a timed-out or aborted agent call may take to stop once told; "
        "no retry starts before it has stopped or this has passed.",
    )


class ExecutionSettings(BaseModel):
    """How the steps of one Dagster segment are executed (``BATON_EXECUTION__*``)."""

    executor: Literal["in_process", "threaded", "celery", "k8s"] = Field(
        "in_process",
        description="The executor of every compiled job: in_process runs the steps of a "
        "segment one after another in the run worker; threaded runs its ready steps at once in "
        "threads of the run worker (at most `max_concurrency`); celery sends each step to the "
        "Celery workers of `celery_queue` (`baton celery-worker`); k8s runs each step as a "
        "Kubernetes Job (dagster-k8s, deploy/k8s/; docs/performance.md compares the options).",
    )
    max_concurrency: int = Field(
        8,
        ge=1,
        le=256,
        description="threaded executor: most steps of one segment at once, unless the "
        "orchestration sets `concurrency`.",
    )
    celery_broker: SecretStr = Field(
        SecretStr("pyamqp://guest:guest@127.0.0.1:5672//"),
        description="Celery broker URL of the celery executor and of `baton celery-worker` "
        "(a secret: it may carry a password).",
    )
    celery_backend: SecretStr = Field(
        SecretStr("rpc://"),
        description="Celery result backend URL (rpc:// sends results back through the broker).",
    )
    celery_queue: str = Field(
        "baton",
        min_length=1,
        description="Celery queue the steps are sent to and `baton celery-worker` listens on.",
    )


class Settings(BaseSettings):
    """Baton's configuration (environment variables prefixed ``BATON_``)."""

    model_config = SettingsConfigDict(
        env_prefix="BATON_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Folder for the embedded SQLite databases, Dagster home and assets.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL of Baton's tables; default sqlite:///<data_dir>/baton.db.",
    )
    library_dir: str = Field(
        default=str(SHIPPED_LIBRARY),
        description="Folders of orchestration YAML files, separated by ':'.",
    )
    assets_dir: Path | None = Field(
        default=None, description="Folder of the asset store; default <data_dir>/assets."
    )
    auto_migrate: bool = Field(
        default=True,
        description="Bring Baton's tables to the newest revision when the code location loads.",
    )
    strict_library: bool = Field(
        default=False,
        description="Refuse to load the code location when any library file is invalid; "
        "by default invalid files are left out and reported (`baton library problems`).",
    )
    dagster: DagsterSettings = Field(default_factory=DagsterSettings)
    sensors: SensorSettings = Field(default_factory=SensorSettings)
    children: ChildrenSettings = Field(default_factory=ChildrenSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    steps: StepSettings = Field(default_factory=StepSettings)
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)
    secret_key: SecretStr | None = Field(
        default=None,
        description="Key that encrypts stored webhook secrets (Fernet, urlsafe base64 of 32 "
        "bytes); default: a key generated once in <data_dir>/secret.key.",
    )
    secret_key_previous: SecretStr | None = Field(
        default=None,
        description="Keys that BATON_SECRET_KEY replaced, comma-separated: stored webhook "
        "secrets are still decrypted with them (never encrypted) until `baton secrets "
        "rotate-key` has re-encrypted every one under the current key.",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8080",
        description="Base URL of Baton's API, for links in approval notices.",
    )

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def db_url(self) -> str:
        """The database URL in clear, for SQLAlchemy only; never log it."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'baton.db'}"

    @property
    def dagster_home(self) -> Path:
        """DAGSTER_HOME: the setting, else the environment, else <data_dir>/dagster."""
        if self.dagster.home is not None:
            return self.dagster.home.expanduser().resolve()
        if os.environ.get("DAGSTER_HOME"):
            return Path(os.environ["DAGSTER_HOME"]).expanduser().resolve()
        return self.data_dir / "dagster"

    @property
    def library_dirs(self) -> list[Path]:
        """The library folders, in the order given."""
        return [Path(part).expanduser() for part in self.library_dir.split(":") if part.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
