"""The three kinds of op in a Baton job: start, one per step, finish.

Every op asks the store first. A step already completed (or skipped) in this orchestration
run returns its stored output without calling its agent, so any new Dagster run of the job
(resume, retry, re-execution) simply runs the whole job again.
"""

import threading
import uuid
from collections.abc import Iterator
from typing import Any

from dagster import Failure, In, OpDefinition, OpExecutionContext, Out, Output

from agent_resources.base import AgentError, AgentRequest, AgentResult
from agent_resources.catalog import agent_catalog
from agent_resources.resources import AgentResource
from baton.state import IllegalTransition
from baton.store.service import RunStore, StepPlan, UnknownRun
from orchestration_defs.compiler.config import RUN_ID_FIELD, start_op_schema
from orchestration_defs.compiler.retry import retry_policy
from orchestration_defs.language.graph import step_dependencies
from orchestration_defs.language.inputs import InputError, resolve_inputs
from orchestration_defs.language.models import OrchestrationSpec, StepSpec
from orchestration_defs.language.templates import TemplateError, render, truthy

RUN_TAG = "baton/run_id"
STORE_KEY = "baton_store"
BATON_IN = "baton"


def dep_input(step_id: str) -> str:
    """The op input that carries a dependency's result."""
    return f"after_{step_id}"


def op_name(spec: OrchestrationSpec, name: str) -> str:
    """Op names are unique across the code location, so they carry the job name."""
    return f"{spec.job_name}__{name}"


def _store(context: OpExecutionContext) -> RunStore:
    return getattr(context.resources, STORE_KEY).store()


# start ------------------------------------------------------------------------------------


def build_start_op(spec: OrchestrationSpec, definition_version: int) -> OpDefinition:
    """Creates or continues the orchestration run and hands its identity to every step."""
    plans = [StepPlan(s.id, s.kind, s.agent) for s in spec.steps]

    def compute(context: OpExecutionContext, _inputs: dict[str, Any]) -> Iterator[Output]:
        store = _store(context)
        run_id = _resolve_run_id(context, spec, definition_version, store)
        try:
            segment = store.begin_segment(run_id=run_id, dagster_run_id=context.run_id, steps=plans)
        except (UnknownRun, IllegalTransition) as exc:
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
    context: OpExecutionContext, spec: OrchestrationSpec, version: int, store: RunStore
) -> uuid.UUID:
    """The run named in config or carried by the Dagster run's lineage, else a new one."""
    given = context.op_config.get(RUN_ID_FIELD) or _lineage_run_id(context)
    if given:
        try:
            run_id = uuid.UUID(given)
        except ValueError as exc:
            raise Failure(f"{RUN_ID_FIELD} '{given}' is not a run id", allow_retries=False) from exc
    else:
        try:
            inputs = resolve_inputs(spec.inputs, context.op_config.get("inputs") or {})
        except InputError as exc:
            raise Failure(f"invalid inputs: {exc}", allow_retries=False) from exc
        run_id = store.create_run(
            organization=spec.organization,
            slug=spec.slug,
            version=version,
            inputs=inputs,
            created_by=context.run.tags.get("dagster/user") or "dagster-ui",
        )
    if context.run.tags.get(RUN_TAG) != str(run_id):
        context.instance.add_run_tags(context.run_id, {RUN_TAG: str(run_id)})
    return run_id


def _lineage_run_id(context: OpExecutionContext) -> str | None:
    """The orchestration run of this Dagster run's tags, or of the run it re-executes.

    Dagster's re-execution (from the UI) does not always copy tags; its parent's tag says
    which orchestration run a re-execution continues.
    """
    own = context.run.tags.get(RUN_TAG)
    if own:
        return own
    for parent_id in (context.run.parent_run_id, context.run.root_run_id):
        parent = context.instance.get_run_by_id(parent_id) if parent_id else None
        if parent is not None and parent.tags.get(RUN_TAG):
            return parent.tags[RUN_TAG]
    return None


def _continue_reexecution(context: OpExecutionContext, store: RunStore, run_id: uuid.UUID) -> None:
    """A Dagster re-execution from failure skips the start op: reopen the failed run here."""
    if context.run.parent_run_id is None:
        return
    if store.reopen_failed(run_id, dagster_run_id=context.run_id):
        context.instance.add_run_tags(context.run_id, {RUN_TAG: str(run_id)})
        context.log.info(f"orchestration run {run_id} continues in re-execution {context.run_id}")


# steps ------------------------------------------------------------------------------------


def build_step_op(spec: OrchestrationSpec, step: StepSpec) -> OpDefinition:
    """The op of one agent step: memo check, condition, render, call, record."""
    agent_key = agent_catalog()[step.agent or ""].resource_key
    deps = step_dependencies(step)
    policy = retry_policy(step.retry)
    max_retries = policy.max_retries if policy else 0

    def compute(context: OpExecutionContext, inputs: dict[str, Any]) -> Iterator[Output]:
        baton = inputs[BATON_IN]
        run_id = uuid.UUID(baton["run_id"])
        store = _store(context)
        _continue_reexecution(context, store, run_id)
        memo = store.step_memo(run_id, step.id)
        if memo is not None:
            context.log.info(f"step '{step.id}' already {memo.status}: reusing its output")
            yield Output({"status": memo.status, "output": memo.output}, "result")
            return
        results = {d: inputs[dep_input(d)] for d in deps}
        reason = _skip_reason(step, baton, results, context)
        if reason is not None:
            store.skip_step(run_id, step.id, reason=reason)
            context.log.info(f"step '{step.id}' skipped: {reason}")
            yield Output({"status": "skipped", "output": None}, "result")
            return
        agent: AgentResource = getattr(context.resources, agent_key)
        output = _run_agent(context, store, agent, run_id, step, baton, results, max_retries)
        yield Output({"status": "completed", "output": output}, "result")

    return OpDefinition(
        compute_fn=compute,
        name=op_name(spec, step.id),
        ins={BATON_IN: In(dict), **{dep_input(d): In(dict) for d in deps}},
        outs={"result": Out(dict)},
        required_resource_keys={STORE_KEY, agent_key},
        description=step.description or f"Calls agent '{step.agent}'.",
        retry_policy=policy,
        tags={"baton/step": step.id, "baton/agent": step.agent or ""},
    )


def template_context(
    baton: dict[str, Any], results: dict[str, dict[str, Any]], dagster_run_id: str
) -> dict[str, Any]:
    """What templates see: inputs, the results of depended-on steps, and the run."""
    return {
        "inputs": baton["inputs"],
        "steps": {
            sid: {"output": r["output"], "status": r["status"]} for sid, r in results.items()
        },
        "run": {
            "id": baton["run_id"],
            "orchestration": baton["orchestration"],
            "version": baton["version"],
            "organization": baton["organization"],
            "dagster_run_id": dagster_run_id,
        },
    }


def _skip_reason(
    step: StepSpec,
    baton: dict[str, Any],
    results: dict[str, dict[str, Any]],
    context: OpExecutionContext,
) -> str | None:
    if results and all(r["status"] == "skipped" for r in results.values()):
        return "every step it depends on was skipped"
    if step.when is None:
        return None
    try:
        value = render(step.when, template_context(baton, results, context.run_id))
    except TemplateError as exc:
        _fail_unstartable(context, baton, step, f"when: {exc}")
    return None if truthy(value) else f"condition is false: {step.when}"


def _fail_unstartable(
    context: OpExecutionContext, baton: dict[str, Any], step: StepSpec, message: str
) -> None:
    run_id = uuid.UUID(baton["run_id"])
    store = _store(context)
    error = {"message": message, "type": "TemplateError", "retryable": False}
    store.fail_step(run_id, step.id, error=error, will_retry=False)
    store.fail_run(run_id, {"step_id": step.id, **error})
    raise Failure(f"step '{step.id}': {message}", allow_retries=False)


def _run_agent(
    context: OpExecutionContext,
    store: RunStore,
    agent: AgentResource,
    run_id: uuid.UUID,
    step: StepSpec,
    baton: dict[str, Any],
    results: dict[str, dict[str, Any]],
    max_retries: int,
) -> Any:
    try:
        rendered = render(step.with_, template_context(baton, results, context.run_id))
    except TemplateError as exc:
        _fail_unstartable(context, baton, step, f"with: {exc}")
    attempt = store.start_step(run_id, step.id, input=rendered, dagster_run_id=context.run_id)
    request = AgentRequest(
        run_id=str(run_id),
        step_id=step.id,
        attempt=attempt,
        input=rendered,
        timeout_seconds=step.timeout_seconds,
    )
    try:
        result = _call_with_timeout(agent, request, step.timeout_seconds)
    except Exception as exc:  # every failure is recorded before Dagster sees it
        retryable = exc.retryable if isinstance(exc, AgentError) else True
        final = not retryable or context.retry_number >= max_retries
        error = {"message": str(exc), "type": type(exc).__name__, "retryable": retryable}
        store.fail_step(run_id, step.id, error=error, will_retry=not final)
        if final:
            store.fail_run(run_id, {"step_id": step.id, **error})
        raise Failure(
            f"step '{step.id}' attempt {attempt} failed: {exc}", allow_retries=not final
        ) from exc
    store.complete_step(run_id, step.id, output=result.output, usage=result.usage)
    return result.output


def _call_with_timeout(
    agent: AgentResource, request: AgentRequest, timeout: float | None
) -> AgentResult:
    if timeout is None:
        return agent.run(request=request)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = agent.run(request=request)
        except BaseException as exc:
            box["error"] = exc

    # A daemon thread: a call that never returns must not keep the run worker alive.
    worker = threading.Thread(target=target, daemon=True, name=f"agent-{request.step_id}")
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise AgentError(f"timed out after {timeout:g} s (timeout_seconds)", retryable=True)
    if "error" in box:
        raise box["error"]
    return box["result"]


# finish -----------------------------------------------------------------------------------


def build_finish_op(spec: OrchestrationSpec) -> OpDefinition:
    """Renders the run's outputs and marks it completed."""
    step_ids = [s.id for s in spec.steps]

    def compute(context: OpExecutionContext, inputs: dict[str, Any]) -> Iterator[Output]:
        baton = inputs[BATON_IN]
        run_id = uuid.UUID(baton["run_id"])
        store = _store(context)
        _continue_reexecution(context, store, run_id)
        results = {sid: inputs[dep_input(sid)] for sid in step_ids}
        try:
            outputs = render(spec.outputs, template_context(baton, results, context.run_id))
        except TemplateError as exc:
            store.fail_run(run_id, {"message": f"outputs: {exc}", "type": "TemplateError"})
            raise Failure(f"outputs: {exc}", allow_retries=False) from exc
        store.complete_run(run_id, outputs)
        context.log.info(f"orchestration run {run_id} completed")
        yield Output(outputs, "result")

    return OpDefinition(
        compute_fn=compute,
        name=op_name(spec, "finish"),
        ins={BATON_IN: In(dict), **{dep_input(s): In(dict) for s in step_ids}},
        outs={"result": Out(dict)},
        required_resource_keys={STORE_KEY},
        description="Renders the orchestration's outputs and completes the run.",
        tags={"baton/kind": "finish"},
    )
