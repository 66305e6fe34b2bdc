"""The finish op: renders the run's outputs and completes it."""

import uuid
from collections.abc import Iterator
from typing import Any

from dagster import Failure, In, OpDefinition, OpExecutionContext, Out, Output

from baton.dagster_status import tag_run_segments
from baton.settings import get_settings
from orchestration_defs.compiler.child_launch import child_ended
from orchestration_defs.compiler.common import (
    BATON_IN,
    STORE_KEY,
    continue_reexecution,
    dep_input,
    op_name,
    op_store,
    require_active_segment,
    template_context,
)
from orchestration_defs.language.graph import finish_dependencies
from orchestration_defs.language.models import OrchestrationSpec
from orchestration_defs.language.templates import TemplateError, render


def _tag_completed(context: OpExecutionContext, run_id: uuid.UUID) -> None:
    """Tag the run's segments ``baton/status=completed`` (earlier ones waited or ran)."""
    try:
        tag_run_segments(context.instance, run_id, "completed")
    except Exception as exc:  # the run is completed in the store; the status sensor tags later
        context.log.warning(f"could not tag the segments completed: {exc}")


def build_finish_op(spec: OrchestrationSpec) -> OpDefinition:
    """Renders the orchestration's outputs and marks the run completed."""
    step_ids = finish_dependencies(spec)

    def compute(context: OpExecutionContext, inputs: dict[str, Any]) -> Iterator[Output]:
        baton = inputs[BATON_IN]
        run_id = uuid.UUID(baton["run_id"])
        store = op_store(context)
        continue_reexecution(context, store, run_id)
        require_active_segment(context, store, run_id)
        results = {sid: inputs[dep_input(sid)] for sid in step_ids}
        try:
            outputs = render(
                spec.outputs,
                template_context(baton, results, context.run_id),
                field="outputs",
                limits=get_settings().limits.templates(),
            )
        except TemplateError as exc:
            message = store.mask(str(exc))
            store.fail_run(run_id, {"message": message, "type": "TemplateError"})
            raise Failure(message, allow_retries=False) from None
        store.complete_run(run_id, outputs)
        context.log.info(f"orchestration run {run_id} completed")
        _tag_completed(context, run_id)
        if baton.get("parent_run_id"):
            child_ended(context, store, run_id)
        yield Output(store.mask(outputs), "result")

    return OpDefinition(
        compute_fn=compute,
        name=op_name(spec, "finish"),
        ins={BATON_IN: In(dict), **{dep_input(s): In(dict) for s in step_ids}},
        outs={"result": Out(dict)},
        required_resource_keys={STORE_KEY},
        description="Renders the orchestration's outputs and completes the run.",
        tags={"baton/kind": "finish"},
    )
