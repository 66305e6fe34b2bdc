"""The op of an orchestration step: create the children, end the segment, continue when done.

When the run reaches the step it renders each child's inputs, creates the children and
launches the first ``max_parallel`` of them (``baton.lifecycle.Lifecycle.start_children``),
then yields no output: every step after it is skipped and the Dagster run ends successfully,
holding nothing while the children run. When the last child ends, whoever records that end
writes the step's output and launches the parent's next segment, in which this op returns the
stored output (the memo) like any finished step.
"""

import uuid
from collections.abc import Iterator
from typing import Any

from dagster import In, OpDefinition, OpExecutionContext, Out, Output

from baton.children import ChildError, ChildRequest
from baton.dagster_status import tag_run_segments
from baton.lifecycle import Lifecycle
from baton.segments import ROOT_RUN_TAG
from baton.settings import get_settings
from orchestration_defs.compiler.child_launch import WorkerLauncher
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
from orchestration_defs.compiler.step_op import fail_unstartable, memo_result, skip_reason
from orchestration_defs.language.graph import step_dependencies
from orchestration_defs.language.models import OrchestrationSpec, StepSpec
from orchestration_defs.language.templates import TemplateError, render

WORKER = "worker"


def build_orchestration_op(spec: OrchestrationSpec, step: StepSpec) -> OpDefinition:
    """The op for an orchestration step."""
    deps = step_dependencies(step)

    def compute(context: OpExecutionContext, inputs: dict[str, Any]) -> Iterator[Output]:
        baton = inputs[BATON_IN]
        run_id = uuid.UUID(baton["run_id"])
        store = op_store(context)
        continue_reexecution(context, store, run_id)
        memo = store.step_memo(run_id, step.id)
        if memo is not None:
            context.log.info(f"step '{step.id}' already {memo.status}: its children ended")
            yield Output(memo_result(memo), "result")
            return
        require_active_segment(context, store, run_id)
        results = {d: inputs[dep_input(d)] for d in deps}
        reason = skip_reason(context, store, step, baton, results)
        if reason is not None:
            store.skip_step(run_id, step.id, reason=reason)
            context.log.info(f"step '{step.id}' skipped: {reason}")
            yield Output({"status": "skipped", "output": None}, "result")
            return
        request = _request(context, store, step, baton, results)
        lifecycle = Lifecycle(store, WorkerLauncher(context), via=WORKER)
        try:
            advance = lifecycle.start_children(request, max_depth=get_settings().children.max_depth)
        except ChildError as exc:
            fail_unstartable(store, baton, step, f"children: {exc}")
        if advance.output is not None:
            yield Output({"status": "completed", "output": advance.output}, "result")
            return
        context.log.info(
            f"step '{step.id}' waits on {len(request.inputs)} child run(s) of "
            f"'{step.orchestration}'; this Dagster run ends here and holds nothing"
        )
        _tag_waiting(context, run_id)

    return OpDefinition(
        compute_fn=compute,
        name=op_name(spec, step.id),
        ins={BATON_IN: In(dict), **{dep_input(d): In(dict) for d in deps}},
        # Not required: no output means "waiting on children"; Dagster skips what follows.
        outs={"result": Out(dict, is_required=False)},
        required_resource_keys={STORE_KEY},
        description=step.description or f"Runs '{step.orchestration}' as child runs.",
        tags={"baton/step": step.id, "baton/kind": "orchestration"},
        pool=step.pool,
    )


def _request(
    context: OpExecutionContext,
    store: Any,
    step: StepSpec,
    baton: dict[str, Any],
    results: dict[str, dict[str, Any]],
) -> ChildRequest:
    """Render ``for_each`` and each child's ``with``; a render error fails the step."""
    variables = template_context(baton, results, context.run_id)
    try:
        items = [None] if step.for_each is None else render(step.for_each, variables)
        if not isinstance(items, list):
            raise TemplateError(f"for_each must give a list, got {type(items).__name__}")
        given = [
            render(step.with_ or {}, _loop(variables, step, item, index))
            for index, item in enumerate(items)
        ]
    except TemplateError as exc:
        fail_unstartable(store, baton, step, f"children: {exc}")
    return ChildRequest(
        parent_id=uuid.UUID(baton["run_id"]),
        step_id=step.id,
        orchestration=step.orchestration or "",
        version=step.version,
        inputs=given,
        max_parallel=step.max_parallel,
        on_child_failure=step.child_failure_policy,
        dagster_run_id=context.run_id,
    )


def _loop(variables: dict[str, Any], step: StepSpec, item: Any, index: int) -> dict[str, Any]:
    if step.for_each is None:
        return variables
    return {**variables, "item": item, "index": index}


def _tag_waiting(context: OpExecutionContext, run_id: uuid.UUID) -> None:
    """This segment ends waiting on children: say so on the run's segments, and make the
    parent part of its tree in the UI's tag filter."""
    try:
        context.instance.add_run_tags(context.run_id, {ROOT_RUN_TAG: _root_of(context, run_id)})
        tag_run_segments(context.instance, run_id, "awaiting_children")
    except Exception as exc:  # the wait is stored; the status sensor tags it later
        context.log.warning(f"could not tag the segment awaiting_children: {exc}")


def _root_of(context: OpExecutionContext, run_id: uuid.UUID) -> str:
    return context.run.tags.get(ROOT_RUN_TAG) or str(run_id)
