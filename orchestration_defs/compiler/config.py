"""Run config from the definition's ``inputs``: typed launchpad fields with defaults."""

from __future__ import annotations

from typing import Any

from dagster import (
    Any as AnyType,
)
from dagster import (
    Array,
    Bool,
    ConfigMapping,
    Enum,
    EnumValue,
    Field,
    Float,
    Int,
    Noneable,
    Permissive,
    Shape,
    String,
)

from baton.segments import RUN_ID_FIELD
from orchestration_defs.language.models import InputSpec, OrchestrationSpec

_SCALARS: dict[str, Any] = {"string": String, "integer": Int, "number": Float, "boolean": Bool}


def _config_type(job_name: str, name: str, spec: InputSpec) -> Any:
    if spec.type == "string" and spec.enum:
        # Enum type names must be unique in the code location, hence the job prefix.
        return Enum(f"{job_name}__{name}", [EnumValue(str(v)) for v in spec.enum])
    if spec.type in _SCALARS:
        return _SCALARS[spec.type]
    if spec.type == "array":
        return Array(AnyType)
    return Permissive()


def _input_field(job_name: str, name: str, spec: InputSpec) -> Field:
    config_type = _config_type(job_name, name, spec)
    if spec.required:
        return Field(config_type, is_required=True, description=spec.description)
    if spec.default is not None:
        return Field(config_type, default_value=spec.default, description=spec.description)
    return Field(Noneable(config_type), is_required=False, description=spec.description)


def inputs_schema(spec: OrchestrationSpec) -> Shape:
    """The ``inputs`` section operators fill in the launchpad."""
    return Shape(
        {name: _input_field(spec.job_name, name, item) for name, item in spec.inputs.items()}
    )


def job_config(spec: OrchestrationSpec, start_op_name: str) -> ConfigMapping:
    """A config mapping so run config reads ``{inputs: {...}}`` (``baton_run_id`` optional)."""

    def to_op_config(outer: dict[str, Any]) -> dict[str, Any]:
        return {"ops": {start_op_name: {"config": outer}}}

    schema = {
        "inputs": Field(inputs_schema(spec)),
        # Optional without a default, so the launchpad's scaffolded config leaves it out:
        # an operator starting a run never sees Baton's internal id. Baton's segments carry
        # the run id in the baton/run_id tag; older callers may still pass it here.
        RUN_ID_FIELD: Field(
            String,
            is_required=False,
            description="Internal: the orchestration run a segment continues. Leave it out "
            "to start a new run.",
        ),
    }
    return ConfigMapping(config_fn=to_op_config, config_schema=schema)


def start_op_schema(spec: OrchestrationSpec) -> dict[str, Field]:
    """The start op's own config schema (what the mapping fills)."""
    return {
        "inputs": Field(inputs_schema(spec)),
        RUN_ID_FIELD: Field(String, is_required=False),
    }
