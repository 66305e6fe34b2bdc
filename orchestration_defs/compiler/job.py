"""One Dagster job per orchestration: start -> steps (by their dependencies) -> finish."""

from __future__ import annotations

from dagster import (
    DependencyDefinition,
    GraphDefinition,
    JobDefinition,
    NodeInvocation,
    OpDefinition,
)

from orchestration_defs.compiler.checkpoint_op import build_checkpoint_op
from orchestration_defs.compiler.common import BATON_IN, dep_input, op_name
from orchestration_defs.compiler.config import job_config
from orchestration_defs.compiler.executor import job_executor
from orchestration_defs.compiler.finish_op import build_finish_op
from orchestration_defs.compiler.orchestration_op import build_orchestration_op
from orchestration_defs.compiler.start_op import build_start_op
from orchestration_defs.compiler.step_op import build_step_op
from orchestration_defs.language.graph import finish_dependencies, step_dependencies
from orchestration_defs.language.models import OrchestrationSpec, StepSpec


def _build_step(spec: OrchestrationSpec, step: StepSpec) -> OpDefinition:
    if step.checkpoint is not None:
        return build_checkpoint_op(spec, step)
    if step.orchestration is not None:
        return build_orchestration_op(spec, step)
    return build_step_op(spec, step)


def build_job(spec: OrchestrationSpec) -> JobDefinition:
    """The Dagster job for ``spec`` on the executor the settings choose (executor.py)."""
    start = build_start_op(spec)
    steps = [_build_step(spec, step) for step in spec.steps]
    finish = build_finish_op(spec)
    start_dep = DependencyDefinition(start.name)
    dependencies: dict[NodeInvocation, dict[str, DependencyDefinition]] = {}
    for step, op in zip(spec.steps, steps, strict=True):
        deps = {
            dep_input(d): DependencyDefinition(op_name(spec, d)) for d in step_dependencies(step)
        }
        dependencies[NodeInvocation(op.name)] = {BATON_IN: start_dep, **deps}
    dependencies[NodeInvocation(finish.name)] = {
        BATON_IN: start_dep,
        **{dep_input(s): DependencyDefinition(op_name(spec, s)) for s in finish_dependencies(spec)},
    }
    graph = GraphDefinition(
        name=spec.job_name,
        description=spec.description or spec.name,
        node_defs=[start, *steps, finish],
        dependencies=dependencies,
    )
    return graph.to_job(
        name=spec.job_name,
        description=spec.description or spec.name,
        config=job_config(spec, start.name),
        tags={**spec.tags, "baton/orchestration": spec.slug, "baton/version": str(spec.version)},
        executor_def=job_executor(concurrency=spec.concurrency),
    )
