"""The compensation job of an orchestration: ``<job>__compensate``, one op that walks the rows.

One op, not one per step: the order is the run's (reverse completion, decided when the
compensation was planned, ``baton.compensation``), not the definition's, so fixed op slots
would each have to look up which row is theirs; a single op runs the rows strictly one after
the other, and a failing compensation cannot stop the ones after it (Dagster would skip the
ops downstream of a failed op). Each compensation's ``retry:`` is applied inside the op, with
Dagster's own backoff formula (``baton.retry_policy``). A compensation already completed is
never called again: a re-run of the job (an op retry, an operator's ``compensate`` after a
failure) runs only the rows not completed, and an interrupted row presents the same call (and
idempotency key) again. The op fails at the end if any compensation failed for good, so the
Dagster UI shows the run failed.
"""

import time
import uuid
from collections.abc import Iterator
from typing import Any

from dagster import (
    ConfigMapping,
    Failure,
    Field,
    GraphDefinition,
    JobDefinition,
    OpDefinition,
    OpExecutionContext,
    Permissive,
)

from agent_resources.base import AgentRequest
from agent_resources.catalog import agent_catalog
from agent_resources.resources import AgentResource
from baton.compensation import Compensations, NotCompensable, Row, Work, key_step
from baton.retry_policy import delay_seconds
from baton.segments import RUN_TAG, compensation_job
from baton.settings import get_settings
from orchestration_defs.compiler.agent_call import call_agent, classify
from orchestration_defs.compiler.common import STORE_KEY, op_store, segment_of, template_context
from orchestration_defs.compiler.executor import job_executor
from orchestration_defs.language.models import OrchestrationSpec, StepSpec
from orchestration_defs.language.templates import TemplateError, render

CONFIG = {"inputs": Field(Permissive(), is_required=False, default_value={})}


def build_compensation_job(spec: OrchestrationSpec) -> JobDefinition | None:
    """The compensation job of ``spec``; None if no step has a ``compensate:``."""
    steps = {s.id: s for s in spec.compensable_steps}
    if not steps:
        return None
    name = compensation_job(spec.job_name)
    op = _build_op(spec, name, steps)
    graph = GraphDefinition(name=name, node_defs=[op], description=_description(spec))
    return graph.to_job(
        name=name,
        description=_description(spec),
        # Segments carry the run's inputs as every segment does; the op reads them from
        # the store (masked), so the mapping only accepts them.
        config=ConfigMapping(config_fn=lambda _outer: {}, config_schema=CONFIG),
        tags={**spec.tags, "baton/orchestration": spec.slug, "baton/compensation": "true"},
        executor_def=job_executor(),
    )


def _description(spec: OrchestrationSpec) -> str:
    return (
        f"Compensations of '{spec.name}': undoes its completed steps, last completed first, "
        "after a run was aborted or failed."
    )


def _build_op(spec: OrchestrationSpec, name: str, steps: dict[str, StepSpec]) -> OpDefinition:
    catalog = agent_catalog()
    keys = {
        sid: catalog[s.compensate.agent].resource_key for sid, s in steps.items() if s.compensate
    }

    def compute(context: OpExecutionContext, _inputs: dict[str, Any]) -> Iterator[Any]:
        run_id = uuid.UUID(context.run.tags[RUN_TAG])
        compensations = Compensations(op_store(context))
        segment = segment_of(context)
        try:
            work = compensations.begin(run_id, segment)
        except NotCompensable as exc:
            raise Failure(str(exc), allow_retries=False) from None
        failed: dict[str, str] = {}
        for row in work.rows:
            if row.status == "completed" or row.step_id not in steps:
                continue
            agent: AgentResource = getattr(context.resources, keys[row.step_id])
            error = _compensate(context, compensations, work, steps[row.step_id], row, agent)
            if error is not None:
                failed[row.step_id] = error
        compensations.finish(run_id, segment, failed)
        if failed:
            listing = ", ".join(f"'{s}'" for s in failed)
            raise Failure(
                f"compensation of step(s) {listing} failed; the others ran",
                allow_retries=False,
            )
        return iter(())  # no outputs: the rows are the record

    return OpDefinition(
        compute_fn=compute,
        name=f"{name}__run",
        ins={},
        outs={},
        required_resource_keys={STORE_KEY, *keys.values()},
        description="Runs the run's compensations in order; each is recorded like a step.",
        tags={"baton/compensation": "true"},
    )


def _compensate(
    context: OpExecutionContext,
    compensations: Compensations,
    work: Work,
    step: StepSpec,
    row: Row,
    agent: AgentResource,
) -> str | None:
    """Run one compensation under its retry policy; None if it completed, else why not."""
    compensate = step.compensate
    assert compensate is not None
    try:
        rendered = _render(context, work, step)
    except TemplateError as exc:
        message = compensations.store.mask(str(exc))
        compensations.start(
            work.run_id, step.id, input=None, dagster_run_id=context.run_id, new_call=True
        )
        error = {"message": message, "type": "TemplateError", "retryable": False}
        compensations.fail(work.run_id, step.id, error=error, final=True)
        return message
    # An interrupted attempt (the row still running) presents the same call again.
    new_call = row.status != "running"
    attempts = compensate.retry.max_attempts
    for number in range(1, attempts + 1):
        started = compensations.start(
            work.run_id, step.id, input=rendered, dagster_run_id=context.run_id, new_call=new_call
        )
        new_call = True
        request = AgentRequest(
            run_id=str(work.run_id),
            step_id=key_step(step.id),
            attempt=started.attempt,
            call=started.call,
            input=rendered,
            orchestration=work.baton["orchestration"],
            timeout_seconds=compensate.timeout_seconds,
        )
        try:
            result = call_agent(
                agent,
                request,
                compensate.timeout_seconds,
                grace=get_settings().steps.cancel_grace_seconds,
            )
        except Exception as exc:  # recorded, then retried or reported: never dropped
            failure = classify(exc)
            final = not failure.retryable or number >= attempts
            message = compensations.store.mask(str(exc))
            error = {"message": message, "type": type(exc).__name__, "kind": failure.kind}
            compensations.fail(work.run_id, step.id, error=error, final=final)
            context.log.warning(
                f"compensation of step '{step.id}' attempt {started.attempt} failed "
                f"({failure.kind}): {message}"
            )
            if final:
                return message
            time.sleep(failure.retry_after or delay_seconds(compensate.retry, number))
            continue
        compensations.complete(work.run_id, step.id, output=result.output)
        context.log.info(f"step '{step.id}' compensated (call {started.call})")
        return None
    return "no attempt made"  # max_attempts >= 1: not reached


def _render(context: OpExecutionContext, work: Work, step: StepSpec) -> Any:
    """The compensation's ``with``: inputs, steps, run, and ``step`` (the undone step)."""
    compensate = step.compensate
    assert compensate is not None
    scope = template_context(work.baton, work.results, context.run_id)
    own = work.results.get(step.id, {})
    scope["step"] = {
        "id": step.id,
        "input": work.inputs_of.get(step.id),
        "output": own.get("output"),
    }
    return render(
        compensate.with_,
        scope,
        field="compensate.with",
        limits=get_settings().limits.templates(),
    )
