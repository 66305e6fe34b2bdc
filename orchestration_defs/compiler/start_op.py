"""The start op: creates or continues the orchestration run for this Dagster run."""

import uuid
from collections.abc import Iterator
from typing import Any

from dagster import Failure, OpDefinition, OpExecutionContext, Out, Output

from baton.edge import input_limits
from baton.segments import RUN_TAG
from baton.settings import get_settings
from baton.state import IllegalTransition
from baton.store.service import RunStore, StepPlan, Superseded, UnknownRun
from orchestration_defs.compiler.common import (
    STORE_KEY,
    lineage_run_id,
    op_name,
    op_store,
    segment_of,
    takeover_from,
)
from orchestration_defs.compiler.config import RUN_ID_FIELD, start_op_schema
from orchestration_defs.language.inputs import InputError, resolve_inputs
from orchestration_defs.language.models import OrchestrationSpec


def build_start_op(spec: OrchestrationSpec) -> OpDefinition:
    """Creates or continues the orchestration run and hands its identity to every step."""
    plans = [StepPlan(s.id, s.kind, s.agent) for s in spec.steps]

    def compute(context: OpExecutionContext, _inputs: dict[str, Any]) -> Iterator[Output]:
        store = op_store(context)
        run_id = _resolve_run_id(context, spec, store)
        try:
            segment = store.begin_segment(
                run_id=run_id,
                dagster_run_id=context.run_id,
                steps=plans,
                segment=segment_of(context),
                takeover_from=takeover_from(context),
            )
        except (UnknownRun, Superseded, IllegalTransition) as exc:
            raise Failure(
                f"cannot continue orchestration run {run_id}: {exc}", allow_retries=False
            ) from exc
        context.log.info(f"orchestration run {run_id} ({spec.slug} v{segment.version})")
        yield Output(
            {
                "run_id": str(run_id),
                "inputs": segment.inputs,
                "organization": segment.organization,
                "orchestration": spec.slug,
                "version": segment.version,
                # Set for child runs only: their end advances the parent's step.
                "parent_run_id": str(segment.parent_run_id) if segment.parent_run_id else None,
            },
            "result",
        )

    return OpDefinition(
        compute_fn=compute,
        name=op_name(spec, "start"),
        outs={"result": Out(dict)},
        config_schema=start_op_schema(spec),
        required_resource_keys={STORE_KEY},
        description=f"Starts or continues an orchestration run of '{spec.slug}'.",
        tags={"baton/kind": "start"},
    )


def _resolve_run_id(
    context: OpExecutionContext, spec: OrchestrationSpec, store: RunStore
) -> uuid.UUID:
    """The run named in config or carried by the Dagster run's lineage, else a new one."""
    given = context.op_config.get(RUN_ID_FIELD) or lineage_run_id(context)
    if given:
        try:
            run_id = uuid.UUID(given)
        except ValueError as exc:
            raise Failure(f"{RUN_ID_FIELD} '{given}' is not a run id", allow_retries=False) from exc
    else:
        try:
            given = context.op_config.get("inputs") or {}
            inputs = resolve_inputs(spec.inputs, given, input_limits(get_settings()))
        except InputError as exc:
            raise Failure(f"invalid inputs: {exc}", allow_retries=False) from exc
        run_id = store.create_run(
            organization=spec.organization,
            slug=spec.slug,
            version=spec.version,
            inputs=inputs,
            created_by=context.run.tags.get("dagster/user") or "dagster-ui",
            segment=segment_of(context),
        )
    if context.run.tags.get(RUN_TAG) != str(run_id):
        context.instance.add_run_tags(context.run_id, {RUN_TAG: str(run_id)})
    return run_id
