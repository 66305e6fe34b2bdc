"""The op of a checkpoint step: ask a person, end the Dagster run, continue when decided.

When the run reaches the checkpoint it stores a pending approval and yields no output: every
step after it is skipped and the Dagster run ends successfully, holding nothing while a person
thinks. The approval sensor launches the next segment once the approval is decided; in it,
this op finds the decision and completes with the approved value.
"""

import re
import uuid
from collections.abc import Iterator
from typing import Any

from dagster import In, OpDefinition, OpExecutionContext, Out, Output

from baton.approvals import Approvals
from baton.dagster_status import tag_run_segments
from baton.db.models import HumanApproval
from baton.notify import notify_pending
from baton.settings import get_settings
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
from orchestration_defs.language.checkpoint import CheckpointSpec, parse_duration
from orchestration_defs.language.graph import retry_step_of, step_dependencies
from orchestration_defs.language.models import OrchestrationSpec, StepSpec
from orchestration_defs.language.templates import TemplateError, render


def build_checkpoint_op(spec: OrchestrationSpec, step: StepSpec) -> OpDefinition:
    """The op for a checkpoint step."""
    checkpoint = step.checkpoint
    assert checkpoint is not None
    deps = step_dependencies(step)
    policy = _policy(checkpoint, retry_step_of(spec, step))

    def compute(context: OpExecutionContext, inputs: dict[str, Any]) -> Iterator[Output]:
        baton = inputs[BATON_IN]
        run_id = uuid.UUID(baton["run_id"])
        store = op_store(context)
        continue_reexecution(context, store, run_id)
        memo = store.step_memo(run_id, step.id)
        if memo is not None:
            yield Output(memo_result(memo), "result")
            return
        require_active_segment(context, store, run_id)
        results = {d: inputs[dep_input(d)] for d in deps}
        approvals = Approvals(store)
        latest = approvals.latest(run_id, step.id)
        # `when` decides whether to ask at all; once asked, the approval's own state rules.
        reason = skip_reason(context, store, step, baton, results) if latest is None else None
        if reason is not None:
            store.skip_step(run_id, step.id, reason=reason)
            context.log.info(f"checkpoint '{step.id}' skipped: {reason}")
            yield Output({"status": "skipped", "output": None}, "result")
            return
        if latest is not None and latest.status == "resuming" and latest.decision == "continue":
            output = _approved_output(latest)
            approvals.complete_continue(latest, output, context.run_id)
            context.log.info(f"checkpoint '{step.id}' approved by {latest.decided_by}")
            yield Output({"status": "completed", "output": store.mask(output)}, "result")
            return
        if latest is not None and latest.status in ("pending", "decided"):
            approvals.still_waiting(run_id)
            context.log.info(f"checkpoint '{step.id}' still waits for approval {latest.id}")
            _tag_waiting(context, run_id)
            return
        previous = latest.id if latest is not None and latest.status == "resuming" else None
        _request(context, approvals, checkpoint, policy, step, baton, results, previous)
        _tag_waiting(context, run_id)

    return OpDefinition(
        compute_fn=compute,
        name=op_name(spec, step.id),
        ins={BATON_IN: In(dict), **{dep_input(d): In(dict) for d in deps}},
        # Not required: no output means "waiting", and Dagster skips everything after it.
        outs={"result": Out(dict, is_required=False)},
        required_resource_keys={STORE_KEY},
        description=step.description or f"Checkpoint: {prompt_placeholders(checkpoint.prompt)}",
        tags={"baton/step": step.id, "baton/kind": "checkpoint"},
        pool=step.pool,
    )


_EXPRESSION = re.compile(r"\{\{\s*(?P<expr>.*?)\s*\}\}", re.DOTALL)
_BLOCK = re.compile(r"\{%.*?%\}|\{#.*?#\}", re.DOTALL)


def prompt_placeholders(prompt: str) -> str:
    """The prompt as readable text before a run: each ``{{ x | f }}`` shows as ``<x>``.

    The values exist only once a run reaches the checkpoint, so the op's description (built
    with the job) names what will be filled in instead of showing template syntax.
    """
    text = _BLOCK.sub("", prompt)
    text = _EXPRESSION.sub(lambda m: f"<{m.group('expr').split('|')[0].strip()}>", text)
    return " ".join(text.split())


def _tag_waiting(context: OpExecutionContext, run_id: uuid.UUID) -> None:
    """Tag the run's segments ``baton/status=awaiting_approval``: this one ends waiting."""
    try:
        tag_run_segments(context.instance, run_id, "awaiting_approval")
    except Exception as exc:  # the approval is stored; the status sensor tags it later
        context.log.warning(f"could not tag the segment awaiting_approval: {exc}")


def _policy(checkpoint: CheckpointSpec, retry_step: str | None) -> dict[str, Any]:
    return {
        "decisions": list(checkpoint.decisions),
        "approvers": list(checkpoint.approvers),
        "required_approvals": checkpoint.required_approvals,
        "allow_self_approval": checkpoint.allow_self_approval,
        "modifiable": dict(checkpoint.modifiable),
        "retry_step": retry_step,
        "timeout": checkpoint.timeout,
        "on_timeout": checkpoint.timeout_policy(),
        "notify": [n.model_dump() for n in checkpoint.notify],
    }


def _approved_output(approval: HumanApproval) -> dict[str, Any]:
    value = approval.show
    if isinstance(value, dict) and approval.modifications:
        value = {**value, **approval.modifications}
    return {
        "value": value,
        "decision": approval.decision,
        "decided_by": approval.decided_by,
        "comment": approval.comment,
        "approval_id": str(approval.id),
    }


def _request(
    context: OpExecutionContext,
    approvals: Approvals,
    checkpoint: CheckpointSpec,
    policy: dict[str, Any],
    step: StepSpec,
    baton: dict[str, Any],
    results: dict[str, dict[str, Any]],
    previous: uuid.UUID | None,
) -> None:
    run_id = uuid.UUID(baton["run_id"])
    variables = template_context(baton, results, context.run_id)
    limits = get_settings().limits.templates()
    try:
        prompt = str(render(checkpoint.prompt, variables, field="checkpoint.prompt", limits=limits))
        show = render(checkpoint.show, variables, field="checkpoint.show", limits=limits)
    except TemplateError as exc:
        fail_unstartable(approvals.store, baton, step, str(exc))
    timeout = parse_duration(checkpoint.timeout) if checkpoint.timeout else None
    approval = approvals.request(
        run_id=run_id,
        step_id=step.id,
        prompt=prompt,
        show=show,
        policy=policy,
        timeout=timeout,
        dagster_run_id=context.run_id,
        previous_id=previous,
    )
    context.log.info(
        f"checkpoint '{step.id}' waits for approval {approval.id}; this Dagster "
        "run ends here and holds nothing while it waits"
    )
    if checkpoint.notify:
        notice = _notice(approval, baton)
        for line in notify_pending([n.model_dump() for n in checkpoint.notify], notice):
            context.log.info(f"approval notice: {line}")


def _notice(approval: HumanApproval, baton: dict[str, Any]) -> dict[str, Any]:
    base = get_settings().public_url.rstrip("/")
    return {
        "event": "checkpoint.requested",
        "approval_id": str(approval.id),
        "run_id": str(approval.run_id),
        "orchestration": baton["orchestration"],
        "step_id": approval.step_id,
        "prompt": approval.prompt,
        "show": approval.show,
        "expires_at": approval.expires_at.isoformat() if approval.expires_at else None,
        "decide_url": f"{base}/ui/approvals/{approval.id}",
        "decide_command": f"baton approvals decide {approval.id} --as <user> "
        "--decision continue|retry|abort",
    }
