"""Typed models of an orchestration file. Unknown keys are rejected everywhere."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from orchestration_defs.language.checkpoint import CheckpointSpec
from orchestration_defs.language.triggers import TriggerSpec

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
SLUG = r"^[a-z0-9][a-z0-9_-]*$"

InputType = Literal["string", "integer", "number", "boolean", "array", "object"]
Identifier = Annotated[str, Field(pattern=IDENTIFIER, max_length=100)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def matches_type(value: Any, type_: str) -> bool:
    """Whether a JSON value is of an input type (booleans are not numbers here)."""
    if type_ == "string":
        return isinstance(value, str)
    if type_ == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_ == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_ == "boolean":
        return isinstance(value, bool)
    if type_ == "array":
        return isinstance(value, list)
    return isinstance(value, dict)


class InputSpec(StrictModel):
    """A typed parameter of the orchestration, filled at launch."""

    type: InputType = Field("string", description="The JSON type of the value.")
    required: bool = Field(False, description="Refuse a launch without it.")
    default: Any = Field(None, description="Value used when the launch gives none.")
    enum: list[Any] | None = Field(None, description="The only values allowed.")
    pattern: str | None = Field(None, description="Regular expression a string must match.")
    description: str | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> InputSpec:
        if self.pattern is not None and self.type != "string":
            raise ValueError("'pattern' applies only to inputs of type string")
        for value in self.enum or []:
            if not matches_type(value, self.type):
                raise ValueError(f"enum value {value!r} is not of type {self.type}")
        if self.default is not None:
            if self.required:
                raise ValueError("a required input cannot have a default")
            if not matches_type(self.default, self.type):
                raise ValueError(f"default {self.default!r} is not of type {self.type}")
            if self.enum is not None and self.default not in self.enum:
                raise ValueError(f"default {self.default!r} is not one of enum {self.enum}")
            if self.pattern is not None and not re.search(self.pattern, self.default):
                raise ValueError(
                    f"default {self.default!r} does not match pattern {self.pattern!r}"
                )
        return self


class RetrySpec(StrictModel):
    """How often and how patiently a failing step is tried again."""

    max_attempts: int = Field(1, ge=1, le=50, description="Attempts in all, the first included.")
    delay_seconds: float = Field(0, ge=0, le=86400, description="Wait before a retry.")
    backoff: Literal["constant", "linear", "exponential"] = "constant"
    jitter: Literal["none", "full", "plus_minus"] = "none"

    @field_validator("jitter", mode="before")
    @classmethod
    def _bool_jitter(cls, value: Any) -> Any:
        if value is True:
            return "full"
        if value is False or value is None:
            return "none"
        return value

    @model_validator(mode="after")
    def _jitter_needs_delay(self) -> RetrySpec:
        if self.jitter != "none" and self.delay_seconds == 0:
            raise ValueError("jitter needs a delay_seconds above 0")
        return self


class CompensateSpec(StrictModel):
    """``compensate:``: the agent call that undoes what a completed step did.

    When a run is aborted or fails after such steps completed, their compensations run in
    reverse order of completion (``baton.compensation``). Its ``with`` sees ``inputs``,
    ``steps``, ``run`` and ``step`` (the compensated step: its ``input`` and ``output``).
    """

    agent: str = Field(description="Slug of the catalog agent that undoes the step.")
    with_: Any = Field(
        None, alias="with", description="Its input, templated (inputs, steps, run, step)."
    )
    timeout_seconds: float | None = Field(None, gt=0, le=86400 * 7)
    retry: RetrySpec = Field(default_factory=RetrySpec)  # type: ignore[arg-type]
    description: str | None = None


# What a compensation's templates may use besides inputs, steps and run.
COMPENSATE_ROOT = "step"
# When compensations run unless an orchestration says otherwise.
COMPENSATE_ON_DEFAULT = ("aborted", "failed")


class CacheSpec(StrictModel):
    """``cache:``: reuse the agent's stored answer to the same rendered input for ``ttl``.

    The key is the agent, its catalog entry (a changed configuration is a miss) and the hash of
    the rendered input; see docs/agents.md ("Caching").
    """

    ttl: str | float = Field(
        description="How long a stored answer is reused: 30s, 10m, 1h, 7d, or seconds."
    )

    @field_validator("ttl", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(
                f"expected a duration like 30s, 10m, 1h or 7d, or seconds; got {value!r}"
            )
        seconds = _ttl_seconds(value)
        if not 0 < seconds <= MAX_CACHE_TTL_SECONDS:
            raise ValueError(
                f"ttl must be above 0 and at most {MAX_CACHE_TTL_SECONDS // 86400} days; "
                f"got {value!r}"
            )
        return value

    @property
    def ttl_seconds(self) -> float:
        return _ttl_seconds(self.ttl)


MAX_CACHE_TTL_SECONDS = 86400 * 365
_TTL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _ttl_seconds(value: str | float) -> float:
    if not isinstance(value, str):
        return float(value)
    match = _TTL.match(value)
    if match is None:
        raise ValueError(f"expected a duration like 30s, 10m, 1h or 7d, or seconds; got {value!r}")
    return float(match.group(1)) * _TTL_UNITS[match.group(2) or "s"]


def _unset(value: Any) -> bool:
    # Keys added after definitions were first stored are left out of dumps when unset, so
    # the checksums of stored definitions do not change.
    return value is None


# A Dagster pool name: letters, digits and _ . / - (the names `dagster instance concurrency` takes).
POOL = r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,99}$"


class StepSpec(StrictModel):
    """One step: an agent call, a checkpoint, or child runs of another orchestration."""

    id: Identifier
    agent: str | None = Field(None, description="Slug of the agent the step calls.")
    checkpoint: CheckpointSpec | None = Field(None, description="A human decision point.")
    orchestration: str | None = Field(
        None,
        pattern=SLUG,
        max_length=100,
        description="Slug of a library orchestration to run as child runs.",
    )
    version: int | None = Field(
        None,
        exclude_if=_unset,
        ge=1,
        description="Orchestration steps: the child's version (default: newest).",
    )
    for_each: str | list[Any] | None = Field(
        None,
        exclude_if=_unset,
        description="Orchestration steps: one child per item of this templated list.",
    )
    max_parallel: int | None = Field(
        None,
        exclude_if=_unset,
        ge=1,
        description="Orchestration steps: children running at once (default: all).",
    )
    on_child_failure: Literal["fail", "continue"] | None = Field(
        None,
        exclude_if=_unset,
        description="Orchestration steps: fail the step (default) or report and go on.",
    )
    with_: Any = Field(None, alias="with", description="The step's input, templated.")
    needs: list[Identifier] = Field(default_factory=list, description="Explicit dependencies.")
    when: bool | str | None = Field(None, description="Templated condition; false skips.")
    retry: RetrySpec = Field(default_factory=RetrySpec)  # type: ignore[arg-type]
    timeout_seconds: float | None = Field(None, gt=0, le=86400 * 7)
    description: str | None = None
    pool: str | None = Field(
        None,
        exclude_if=_unset,
        pattern=POOL,
        description="Dagster pool the step takes a slot of (limits set in Dagster's instance).",
    )
    compensate: CompensateSpec | None = Field(
        None,
        exclude_if=_unset,
        description="Agent steps: the call that undoes the step when the run is aborted or fails.",
    )
    cache: CacheSpec | None = Field(
        None,
        exclude_if=_unset,
        description="Agent steps: reuse a stored answer to the same input (cache: {ttl: 1h}).",
    )

    @field_validator("compensate")
    @classmethod
    def _compensate_on_agent(cls, value: Any, info: ValidationInfo) -> Any:
        # A field validator, so the error points at the step's `compensate` key.
        if value is not None and (info.data.get("checkpoint") or info.data.get("orchestration")):
            raise ValueError(
                "'compensate' applies only to agent steps (not checkpoint or orchestration steps)"
            )
        return value

    @field_validator("cache")
    @classmethod
    def _cache_on_agent(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and (info.data.get("checkpoint") or info.data.get("orchestration")):
            raise ValueError(
                "'cache' applies only to agent steps (not checkpoint or orchestration steps)"
            )
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> StepSpec:
        kinds = [k for k in ("agent", "checkpoint", "orchestration") if getattr(self, k)]
        if len(kinds) != 1:
            found = ", ".join(kinds) if kinds else "none"
            raise ValueError(
                f"a step needs exactly one of agent, checkpoint, orchestration (found: {found})"
            )
        if self.checkpoint is not None and (self.with_ is not None or self.retry.max_attempts > 1):
            raise ValueError("a checkpoint step takes no 'with' or 'retry'")
        if self.checkpoint is not None and self.timeout_seconds is not None:
            # The op only records a request; the person's deadline is the checkpoint's own.
            raise ValueError(
                "a checkpoint step takes no 'timeout_seconds' (use checkpoint.timeout)"
            )
        if self.orchestration is None:
            extra = [k for k in CHILD_KEYS if getattr(self, k) is not None]
            if extra:
                raise ValueError(f"'{extra[0]}' applies only to orchestration steps")
        elif self.retry.max_attempts > 1 or self.timeout_seconds is not None:
            # A child retries its own steps; a parent waiting for children holds no worker.
            raise ValueError("an orchestration step takes no 'retry' or 'timeout_seconds'")
        return self

    @property
    def kind(self) -> str:
        """agent, checkpoint or orchestration."""
        if self.checkpoint is not None:
            return "checkpoint"
        return "orchestration" if self.orchestration is not None else "agent"

    @property
    def child_failure_policy(self) -> str:
        """fail (the default) or continue."""
        return self.on_child_failure or "fail"


# Keys only an orchestration step takes (``version`` names the child's version).
CHILD_KEYS = ("version", "for_each", "max_parallel", "on_child_failure")


def job_name(slug: str) -> str:
    """The Dagster job of an orchestration: its slug with dashes turned into underscores."""
    return slug.replace("-", "_")


def pinned_job_name(slug: str, version: int) -> str:
    """The job of an older version kept for the runs that started on it."""
    return f"{job_name(slug)}__v{version}"


class OrchestrationSpec(StrictModel):
    """One orchestration file."""

    slug: str = Field(pattern=SLUG, max_length=100, description="Unique name; the job's name.")
    name: str = Field(min_length=1, max_length=200)
    version: int = Field(ge=1, description="Bump it whenever the content changes.")
    organization: str = Field("global", min_length=1, max_length=100)
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict, description="Added to the Dagster job.")
    inputs: dict[Identifier, InputSpec] = Field(default_factory=dict)
    steps: list[StepSpec] = Field(min_length=1)
    outputs: dict[Identifier, Any] = Field(
        default_factory=dict, description="Run outputs, templated from step outputs."
    )
    # Left out of dumps when empty, so checksums of definitions stored before triggers existed
    # do not change.
    triggers: list[TriggerSpec] = Field(
        default_factory=list,
        exclude_if=lambda value: not value,
        description="What starts a run besides a launch: signed webhooks (docs/api.md).",
    )

    @field_validator("triggers")
    @classmethod
    def _trigger_inputs(cls, triggers: list[TriggerSpec], info: ValidationInfo) -> Any:
        # A field validator (not a model one) so the error points at the `triggers` key.
        inputs = info.data.get("inputs")
        if inputs is None:
            return triggers  # the inputs are invalid, and reported as such
        for index, trigger in enumerate(triggers):
            source = trigger.webhook.source
            given = set(trigger.webhook.inputs)
            unknown = sorted(given - set(inputs))
            if unknown:
                declared = ", ".join(sorted(inputs)) or "none"
                raise ValueError(
                    f"triggers[{index}] (source '{source}') sets unknown input "
                    f"'{unknown[0]}' (declared inputs: {declared})"
                )
            missing = sorted(n for n, i in inputs.items() if i.required and n not in given)
            if missing:
                raise ValueError(
                    f"triggers[{index}] (source '{source}') does not set required input "
                    f"'{missing[0]}'"
                )
        return triggers

    concurrency: int | None = Field(
        None,
        exclude_if=_unset,
        ge=1,
        le=256,
        description="Most steps of one segment at once (threaded executor; default: the "
        "BATON_EXECUTION__MAX_CONCURRENCY setting).",
    )

    compensate_on: list[Literal["aborted", "failed"]] | None = Field(
        None,
        exclude_if=_unset,
        description="When steps' compensations run: aborted, failed (default: both).",
    )

    @field_validator("compensate_on")
    @classmethod
    def _compensate_on(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return None
        if not values:
            raise ValueError("compensate_on needs at least one of: aborted, failed")
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            raise ValueError(f"compensate_on names '{twice[0]}' twice")
        return values

    @property
    def compensated_on(self) -> tuple[str, ...]:
        """The run statuses after which compensations run."""
        return tuple(self.compensate_on or COMPENSATE_ON_DEFAULT)

    @property
    def compensable_steps(self) -> list[StepSpec]:
        """The steps with a ``compensate:``, in definition order."""
        return [step for step in self.steps if step.compensate is not None]

    # Set only on copies made by `pinned()`; never read from YAML.
    _pinned: bool = PrivateAttr(default=False)

    @property
    def job_name(self) -> str:
        """The Dagster job name: the slug with dashes turned into underscores.

        A pinned copy (an older version that unfinished runs still follow) is named
        ``<slug>__v<version>``, so its job and ops sit beside the newest version's.
        """
        if self._pinned:
            return pinned_job_name(self.slug, self.version)
        return job_name(self.slug)

    def pinned(self) -> OrchestrationSpec:
        """A copy whose job is named for its version (see ``job_name``)."""
        copy = self.model_copy()
        copy._pinned = True
        return copy

    def step(self, step_id: str) -> StepSpec:
        """The step with this id."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)
