"""Names and helpers every op shares."""

from typing import Any

from dagster import Failure, OpExecutionContext

from baton.segments import RUN_TAG, segment_of_dagster_run
from baton.store.service import RunStore, Superseded
from orchestration_defs.language.models import OrchestrationSpec

STORE_KEY = "baton_store"
BATON_IN = "baton"


def dep_input(step_id: str) -> str:
    """The op input that carries a dependency's result."""
    return f"after_{step_id}"


def op_name(spec: OrchestrationSpec, name: str) -> str:
    """Op names are unique across the code location, so they carry the job name."""
    return f"{spec.job_name}__{name}"


def op_store(context: OpExecutionContext) -> RunStore:
    """Baton's store, from the op's resource."""
    return getattr(context.resources, STORE_KEY).store()


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


def lineage_run_id(context: OpExecutionContext) -> str | None:
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


def segment_of(context: OpExecutionContext) -> str:
    """This Dagster run's segment id (see ``baton.segments.segment_of_dagster_run``)."""
    return segment_of_dagster_run(context.run)


def takeover_from(context: OpExecutionContext) -> str | None:
    """For a Dagster re-execution, the segment it takes over from; None otherwise."""
    parent_id = context.run.parent_run_id
    if parent_id is None:
        return None
    parent = context.instance.get_run_by_id(parent_id)
    return segment_of_dagster_run(parent) if parent is not None else parent_id


def continue_reexecution(context: OpExecutionContext, store: RunStore, run_id: Any) -> None:
    """A Dagster re-execution from failure skips the start op: reopen the failed run here."""
    if context.run.parent_run_id is None:
        return
    if store.reopen_failed(run_id, dagster_run_id=context.run_id):
        context.instance.add_run_tags(context.run_id, {RUN_TAG: str(run_id)})
        context.log.info(f"orchestration run {run_id} continues in re-execution {context.run_id}")


def require_active_segment(context: OpExecutionContext, store: RunStore, run_id: Any) -> None:
    """Fail this op (without retries) unless its Dagster run is the run's active segment.

    Checked where an op is about to change what the run is (ask for or complete a decision,
    complete the run); agent steps check in the same transaction that starts their attempt.
    """
    try:
        store.check_segment(run_id, segment_of(context))
    except Superseded as exc:
        raise Failure(str(exc), allow_retries=False) from None
