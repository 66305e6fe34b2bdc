"""The op of one agent step: memo, condition, render, call, record.

A step already completed (or skipped) in this orchestration run returns its stored output
without calling its agent, so any new Dagster run of the job simply runs the whole job again.
"""

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

from dagster import (
    AssetKey,
    AssetMaterialization,
    Failure,
    In,
    MetadataValue,
    OpDefinition,
    OpExecutionContext,
    Out,
    Output,
    RetryRequested,
)

from agent_resources.base import AgentRequest, AgentResult
from agent_resources.catalog import agent_catalog
from agent_resources.resources import AgentResource
from baton.assets import asset_store
from baton.retry_policy import retry_policy
from baton.settings import get_settings
from baton.state import IllegalTransition
from baton.store.durable import write_durably
from baton.store.service import (
    DeliverableRecord,
    RunStore,
    StartedCall,
    StepMemo,
    Superseded,
    call_input,
)
from orchestration_defs.compiler.agent_call import call_agent, classify
from orchestration_defs.compiler.child_launch import child_ended
from orchestration_defs.compiler.common import (
    BATON_IN,
    STORE_KEY,
    continue_reexecution,
    dep_input,
    op_name,
    op_store,
    segment_of,
    template_context,
)
from orchestration_defs.compiler.heartbeat import heartbeat
from orchestration_defs.compiler.step_cache import cached_result, remember_result
from orchestration_defs.language.graph import step_dependencies
from orchestration_defs.language.models import OrchestrationSpec, StepSpec
from orchestration_defs.language.templates import TemplateError, render, truthy


def build_step_op(spec: OrchestrationSpec, step: StepSpec) -> OpDefinition:
    """The op for ``step``; it depends on the start op and every step it depends on."""
    agent_key = agent_catalog()[step.agent or ""].resource_key
    deps = step_dependencies(step)
    policy = retry_policy(step.retry)
    max_retries = policy.max_retries if policy else 0

    def compute(context: OpExecutionContext, inputs: dict[str, Any]) -> Iterator[Any]:
        baton = inputs[BATON_IN]
        run_id = uuid.UUID(baton["run_id"])
        store = op_store(context)
        continue_reexecution(context, store, run_id)
        results = {d: inputs[dep_input(d)] for d in deps}
        # Rendering counts inside the step's timeout: the templates and the call share it.
        deadline = time.monotonic() + step.timeout_seconds if step.timeout_seconds else None
        entry = _enter(context, store, step, baton, results, deadline)
        if entry.memo is not None:
            context.log.info(f"step '{step.id}' already {entry.memo.status}: reusing its output")
            yield Output(memo_result(entry.memo), "result")
            return
        if entry.skipped:
            yield Output({"status": "skipped", "output": None}, "result")
            return
        if entry.cached is not None:  # a step with `cache:` whose answer is stored: no call
            output = store.mask(entry.cached.output)
            yield Output({"status": "completed", "output": output}, "result")
            return
        agent: AgentResource = getattr(context.resources, agent_key)
        result, records = _attempt(context, store, agent, step, baton, entry, max_retries, deadline)
        for record in records:
            yield _materialization(spec, step, run_id, context.run_id, record)
        yield Output({"status": "completed", "output": store.mask(result.output)}, "result")

    return OpDefinition(
        compute_fn=compute,
        name=op_name(spec, step.id),
        ins={BATON_IN: In(dict), **{dep_input(d): In(dict) for d in deps}},
        outs={"result": Out(dict)},
        required_resource_keys={STORE_KEY, agent_key},
        description=step.description or f"Calls agent '{step.agent}'.",
        retry_policy=policy,
        tags={"baton/step": step.id, "baton/agent": step.agent or ""},
        pool=step.pool,
    )


def memo_result(memo: StepMemo) -> dict[str, Any]:
    """A finished step's result as later ops receive it; ``given`` marks an operator's skip
    with an output, which later steps take as a result (they are not skipped after it)."""
    result = {"status": memo.status, "output": memo.output}
    if memo.given:
        result["given"] = True
    return result


def skip_reason(
    context: OpExecutionContext,
    store: RunStore,
    step: StepSpec,
    baton: dict[str, Any],
    results: dict[str, dict[str, Any]],
    deadline: float | None = None,
) -> str | None:
    """Why ``step`` is skipped (its dependencies all were, or its ``when`` is false), or None.

    ``deadline`` (``time.monotonic()``) bounds rendering ``when``: the step's timeout.

    Raises:
        Failure: ``when`` does not render; the step and the run are failed first.
    """
    try:
        return _skip_reason(context, step, baton, results, deadline)
    except TemplateError as exc:
        fail_unstartable(store, baton, step, str(exc))


def _skip_reason(
    context: OpExecutionContext,
    step: StepSpec,
    baton: dict[str, Any],
    results: dict[str, dict[str, Any]],
    deadline: float | None,
) -> str | None:
    """``skip_reason`` without the failing: a ``when`` that does not render raises."""
    if results and all(r["status"] == "skipped" and not r.get("given") for r in results.values()):
        return "every step it depends on was skipped"
    if step.when is None:
        return None
    value = render(
        step.when,
        template_context(baton, results, context.run_id),
        field="when",
        limits=get_settings().limits.templates(),
        deadline=deadline,
    )
    return None if truthy(value) else f"condition is false: {step.when}"


@dataclass(frozen=True)
class _Entry:
    """How the op goes on: reuse ``memo``, stop ``skipped``, return ``cached`` (a cache hit,
    recorded already), or call the agent in the attempt ``started`` with ``input``."""

    memo: StepMemo | None = None
    skipped: bool = False
    cached: AgentResult | None = None
    started: StartedCall | None = None
    input: Any = None


def _enter(
    context: OpExecutionContext,
    store: RunStore,
    step: StepSpec,
    baton: dict[str, Any],
    results: dict[str, dict[str, Any]],
    deadline: float | None,
) -> _Entry:
    """Render the step's templates, then settle in one transaction whether it is done
    already, skipped, or starts an attempt (a step with ``cache:`` looks its answer up
    between its reads and its start, so it takes three).

    A step done already is reused even when its templates no longer render.

    Raises:
        Failure: a template does not render (the step and the run are failed first), or
            another segment does the run's work now.
    """
    run_id = uuid.UUID(baton["run_id"])
    try:
        skip = _skip_reason(context, step, baton, results, deadline)
        rendered = None if skip else _render_input(context, step, baton, results, deadline)
    except TemplateError as exc:
        memo = store.step_memo(run_id, step.id)
        if memo is not None:
            return _Entry(memo=memo)
        fail_unstartable(store, baton, step, str(exc))
    try:
        if step.cache is not None:
            return _enter_cached(context, store, step, baton, rendered, skip)
        entry = store.enter_step(
            run_id,
            step.id,
            rendered=rendered,
            skip=skip,
            dagster_run_id=context.run_id,
            segment=segment_of(context),
            retry=context.retry_number > 0,
        )
    except Superseded as exc:  # another segment does this run's work now
        raise Failure(str(exc), allow_retries=False) from None
    except IllegalTransition:  # an operator skipped the step meanwhile
        memo = store.step_memo(run_id, step.id)
        if memo is None:
            raise
        return _Entry(memo=memo)
    if entry.skipped:
        context.log.info(f"step '{step.id}' skipped: {skip}")
    return _Entry(entry.memo, entry.skipped, None, entry.started, entry.input)


def _render_input(
    context: OpExecutionContext,
    step: StepSpec,
    baton: dict[str, Any],
    results: dict[str, dict[str, Any]],
    deadline: float | None,
) -> Any:
    return render(
        step.with_,
        template_context(baton, results, context.run_id),
        field="with",
        limits=get_settings().limits.templates(),
        deadline=deadline,
    )


def _enter_cached(
    context: OpExecutionContext,
    store: RunStore,
    step: StepSpec,
    baton: dict[str, Any],
    rendered: Any,
    skip: str | None,
) -> _Entry:
    """``_enter`` for a step with ``cache:``: reads, the cache lookup, then the start."""
    run_id = uuid.UUID(baton["run_id"])
    reads = store.step_reads(run_id, step.id)
    if reads.memo is not None:
        return _Entry(memo=reads.memo)
    if skip is not None:
        store.skip_step(run_id, step.id, reason=skip)
        context.log.info(f"step '{step.id}' skipped: {skip}")
        return _Entry(skipped=True)
    given = call_input(rendered, reads.replacement, reads.override)
    cached = cached_result(context, store, step, baton, given)
    if cached is not None:
        return _Entry(cached=cached)
    started = store.start_call(
        run_id,
        step.id,
        input=given,
        dagster_run_id=context.run_id,
        segment=segment_of(context),
        retry=context.retry_number > 0,
    )
    return _Entry(started=started, input=given)


def fail_unstartable(
    store: RunStore, baton: dict[str, Any], step: StepSpec, message: str
) -> NoReturn:
    run_id = uuid.UUID(baton["run_id"])
    error = {"message": store.mask(message), "type": "TemplateError", "retryable": False}
    store.fail_step(run_id, step.id, error=error, will_retry=False)
    store.fail_run(run_id, {"step_id": step.id, **error})
    raise Failure(f"step '{step.id}': {error['message']}", allow_retries=False)


def _attempt(
    context: OpExecutionContext,
    store: RunStore,
    agent: AgentResource,
    step: StepSpec,
    baton: dict[str, Any],
    entry: _Entry,
    max_retries: int,
    deadline: float | None,
) -> tuple[AgentResult, list[DeliverableRecord]]:
    """Call the agent in the attempt ``entry`` started and keep its answer."""
    run_id = uuid.UUID(baton["run_id"])
    started = entry.started
    assert started is not None
    # Only the step's own retry policy makes a new call here; a re-execution of an
    # interrupted attempt presents the same call (and idempotency key) again.
    request = AgentRequest(
        run_id=str(run_id),
        step_id=step.id,
        attempt=started.attempt,
        call=started.call,
        input=entry.input,
        orchestration=baton["orchestration"],
        timeout_seconds=step.timeout_seconds,
    )
    grace = get_settings().steps.cancel_grace_seconds
    beat = get_settings().sensors.heartbeat_seconds
    with heartbeat(store, run_id, step.id, started.attempt, context.run_id, beat):
        try:
            result = call_agent(
                agent, request, step.timeout_seconds, _remaining(deadline), grace=grace
            )
        except Exception as exc:  # every failure is recorded before Dagster sees it
            _record_failure(
                context,
                store,
                run_id,
                step,
                started.attempt,
                exc,
                max_retries,
                baton.get("parent_run_id"),
            )
        # Still under the lease: while the write waits out an outage, the reaper must not
        # take the attempt whose answer is already paid for.
        records = _keep(context, store, run_id, step, started, result)
    remember_result(context, store, step, baton, entry.input, result)
    return result, records


def _keep(
    context: OpExecutionContext,
    store: RunStore,
    run_id: uuid.UUID,
    step: StepSpec,
    started: StartedCall,
    result: AgentResult,
) -> list[DeliverableRecord]:
    """Store the answer and its deliverables, waiting out a database outage (bounded): the
    call is paid for, and failing now would make a re-execution call the agent again."""

    def warn(exc: BaseException, wait: float) -> None:
        context.log.warning(
            f"step '{step.id}': the store is unreachable ({type(exc).__name__}); "
            f"keeping the agent's answer, next try in {wait:.1f} s"
        )

    budget = get_settings().steps.completion_retry_seconds
    records = write_durably(
        lambda: store.add_deliverables(
            run_id=run_id,
            step_id=step.id,
            attempt=started.attempt,
            dagster_run_id=context.run_id,
            drafts=result.deliverables,
            assets=asset_store(get_settings()),
        ),
        budget_seconds=budget,
        on_retry=warn,
    )
    write_durably(
        lambda: _complete(store, run_id, step.id, started, result),
        budget_seconds=budget,
        on_retry=warn,
    )
    return records


def _complete(
    store: RunStore, run_id: uuid.UUID, step_id: str, started: StartedCall, result: AgentResult
) -> None:
    try:
        store.complete_step(
            run_id, step_id, output=result.output, usage=result.usage, attempt=started.attempt
        )
    except IllegalTransition:
        # A try whose commit landed but whose answer the outage swallowed: already stored.
        memo = store.step_memo(run_id, step_id)
        if memo is None or memo.status != "completed":
            raise


def _remaining(deadline: float | None) -> float | None:
    """What is left of the step's timeout once its templates are rendered."""
    return None if deadline is None else max(deadline - time.monotonic(), 0.001)


def _record_failure(
    context: OpExecutionContext,
    store: RunStore,
    run_id: uuid.UUID,
    step: StepSpec,
    attempt: int,
    exc: Exception,
    max_retries: int,
    parent_run_id: str | None = None,
) -> NoReturn:
    failure = classify(exc)
    final = not failure.retryable or context.retry_number >= max_retries
    message = store.mask(str(exc))
    error = {
        "message": message,
        "type": type(exc).__name__,
        "kind": failure.kind,
        "retryable": failure.retryable,
    }
    store.fail_step(run_id, step.id, error=error, will_retry=not final)
    if final:
        store.fail_run(run_id, {"step_id": step.id, **error})
        if parent_run_id:
            child_ended(context, store, run_id)
    text = f"step '{step.id}' attempt {attempt} failed ({failure.kind}): {message}"
    if not final and failure.retry_after is not None:
        context.log.warning(f"{text}; retrying after {failure.retry_after:g} s (Retry-After)")
        raise RetryRequested(max_retries=max_retries, seconds_to_wait=failure.retry_after)
    # `from None`: the original exception may carry secrets in its text or traceback.
    raise Failure(text, allow_retries=not final, metadata={"kind": failure.kind}) from None


def _materialization(
    spec: OrchestrationSpec,
    step: StepSpec,
    run_id: uuid.UUID,
    dagster_run_id: str,
    record: DeliverableRecord,
) -> AssetMaterialization:
    metadata: dict[str, Any] = {
        "orchestration_run_id": MetadataValue.text(str(run_id)),
        "dagster_run": MetadataValue.dagster_run(dagster_run_id),
        "deliverable_id": MetadataValue.text(str(record.id)),
        "deliverable": MetadataValue.text(f"{record.name} v{record.version} ({record.type})"),
    }
    if record.asset_uri:
        metadata["uri"] = MetadataValue.url(record.asset_uri)
    if record.mime_type:
        metadata["mime_type"] = MetadataValue.text(record.mime_type)
    if record.size_bytes is not None:
        metadata["size_bytes"] = MetadataValue.int(record.size_bytes)
    return AssetMaterialization(
        asset_key=AssetKey(["baton", spec.slug, step.id]),
        description=f"{record.type} deliverable of step '{step.id}' in run {run_id}",
        metadata=metadata,
    )
