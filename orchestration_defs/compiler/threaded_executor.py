"""A threaded executor: the ready steps of a segment run at once in worker threads of the run.

Dagster ships none. Agent calls are I/O-bound, so threads overlap them without the process
per step of the multiprocess executor (docs/performance.md, "Parallel steps"). Built like
Dagster's in-process executor (one plan context, resources initialised once) with the
scheduling of its multiprocess executor (``ActiveExecution.get_steps_to_execute`` with a limit,
op tag limits and instance pools). Each step's event iterator runs in a worker thread; the
events come back through one queue and are handled on the main thread, so ``ActiveExecution``
(retries, failures, skipped outputs) is only ever touched by one thread.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dagster import (
    DagsterEvent,
    Field,
    Int,
    Noneable,
    Permissive,
    executor,
)
from dagster import _check as check
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.events import EngineEventData
from dagster._core.execution.api import ExecuteRunWithPlanIterable
from dagster._core.execution.compute_logs import create_compute_log_file_key
from dagster._core.execution.context.system import (
    PlanExecutionContext,
    PlanOrchestrationContext,
    StepExecutionContext,
)
from dagster._core.execution.context_creation_job import PlanExecutionContextManager
from dagster._core.execution.plan.execute_plan import (
    _trigger_hook,
    dagster_event_sequence_for_step,
)
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.retries import RetryMode, get_retries_config
from dagster._core.executor.base import Executor
from dagster._core.executor.init import InitExecutorContext
from dagster._utils.timing import time_execution_scope
from dagster_shared.utils.timing import format_duration

# How often the main thread looks for an abort while every worker is busy.
POLL_SECONDS = 0.1


@dataclass
class _Done:
    """A worker's last message: its step ended (``error`` set if the iterator itself raised)."""

    ticket: int
    error: BaseException | None = None


@dataclass
class _Running:
    """One step attempt in flight: its context, its thread and the events it yielded so far."""

    key: str
    context: StepExecutionContext
    thread: threading.Thread
    events: list[DagsterEvent] = field(default_factory=list)
    retry: DagsterEvent | None = None


def _worker(ticket: int, context: StepExecutionContext, out: queue.Queue[Any]) -> None:
    """Run one step's iterator, sending each event (then a _Done) to the main thread."""
    try:
        for event in dagster_event_sequence_for_step(context):
            out.put((ticket, event))
    except BaseException as exc:  # re-raised on the main thread
        out.put(_Done(ticket, exc))
        return
    out.put(_Done(ticket))


def _interrupt(thread: threading.Thread) -> None:
    """Raise DagsterExecutionInterruptedError in ``thread``, as an abort does in the main one.

    The error arrives at the thread's next Python bytecode: an op blocked in a C call (a
    socket read) sees it when the call returns; Baton's agent calls with a timeout wait in a
    loop of short joins for that reason.
    """
    if thread.ident is None or not thread.is_alive():
        return
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(DagsterExecutionInterruptedError)
    )


def threaded_execution_iterator(
    job_context: PlanExecutionContext,
    execution_plan: ExecutionPlan,
    max_concurrent: int,
    tag_concurrency_limits: list[dict[str, Any]] | None,
) -> Iterator[DagsterEvent]:
    """The events of ``execution_plan`` with up to ``max_concurrent`` steps in flight."""
    compute_log_manager = job_context.instance.compute_log_manager
    step_keys = [step.key for step in execution_plan.get_steps_to_execute_in_topo_order()]
    events: queue.Queue[Any] = queue.Queue()
    # By attempt, not step key: a retried step is ready again before its first thread ends.
    running: dict[int, _Running] = {}
    tickets = itertools.count()
    stopping = False
    with (
        InstanceConcurrencyContext(
            job_context.instance, job_context.dagster_run
        ) as instance_concurrency_context,
        execution_plan.start(
            retry_mode=job_context.retry_mode,
            max_concurrent=max_concurrent,
            tag_concurrency_limits=tag_concurrency_limits,
            instance_concurrency_context=instance_concurrency_context,
            step_dependency_config=job_context.step_dependency_config,
        ) as active,
    ):
        log_key = compute_log_manager.build_log_key_for_run(
            job_context.run_id, create_compute_log_file_key()
        )
        with compute_log_manager.capture_logs(log_key) as log_context:
            yield DagsterEvent.capture_logs(job_context, step_keys, log_key, log_context)
            try:
                while (not stopping and not active.is_complete) or running:
                    if not stopping and active.check_for_interrupts():
                        stopping = True
                        active.mark_interrupted()
                        yield DagsterEvent.engine_event(
                            job_context,
                            "Threaded executor: interrupted, stopping the running steps",
                            EngineEventData.interrupted([r.key for r in running.values()]),
                        )
                        for item in running.values():
                            _interrupt(item.thread)
                    if not stopping:
                        for step in active.get_steps_to_execute(
                            limit=max_concurrent - len(running)
                        ):
                            context = job_context.for_step(step, active.get_known_state())
                            ticket = next(tickets)
                            thread = threading.Thread(
                                target=_worker,
                                args=(ticket, context, events),
                                daemon=True,
                                name=f"baton-step-{step.key}",
                            )
                            running[ticket] = _Running(step.key, context, thread)
                            thread.start()
                        yield from active.concurrency_event_iterator(job_context)
                    if not running:
                        if not active.is_complete and not stopping:
                            # Waiting on pool slots or a retry's delay.
                            active.sleep_til_ready()
                        continue
                    try:
                        message = events.get(timeout=POLL_SECONDS)
                    except queue.Empty:
                        continue
                    if isinstance(message, _Done):
                        item = running.pop(message.ticket)
                        item.thread.join()
                        if message.error is not None and not isinstance(
                            message.error, DagsterExecutionInterruptedError
                        ):
                            raise message.error
                        if stopping:
                            continue
                        if item.retry is not None:
                            active.handle_event(item.retry)
                        active.verify_complete(job_context, item.key)
                        for event in active.plan_events_iterator(job_context):
                            item.events.append(event)
                            yield event
                        yield from _trigger_hook(item.context, item.events)
                        continue
                    ticket, event = message
                    item = running[ticket]
                    item.events.append(event)
                    yield event
                    if event.is_step_up_for_retry:
                        # Handled when the attempt's thread ends, as in-process: the retry
                        # must not start while this attempt is still unwinding.
                        item.retry = event
                    else:
                        active.handle_event(event)
            except BaseException:
                for item in running.values():
                    _interrupt(item.thread)
                for item in running.values():
                    item.thread.join(10.0)
                raise
    if stopping:
        raise DagsterExecutionInterruptedError()


class ThreadedExecutor(Executor):
    """Steps of a run in threads of the run worker (see the module docstring)."""

    def __init__(
        self,
        retries: RetryMode,
        max_concurrent: int,
        tag_concurrency_limits: list[dict[str, Any]] | None = None,
    ) -> None:
        self._retries = check.inst_param(retries, "retries", RetryMode)
        self._max_concurrent = check.int_param(max_concurrent, "max_concurrent")
        check.invariant(self._max_concurrent >= 1, "max_concurrent must be at least 1")
        self._tag_concurrency_limits = tag_concurrency_limits

    @property
    def retries(self) -> RetryMode:
        """The run's retry mode."""
        return self._retries

    @property
    def max_concurrent(self) -> int:
        """Most steps in flight at once."""
        return self._max_concurrent

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[DagsterEvent]:
        """Run the plan with one plan context shared by the worker threads."""
        limit = self._max_concurrent
        tags = self._tag_concurrency_limits

        def iterator(
            job_context: PlanExecutionContext, execution_plan: ExecutionPlan
        ) -> Iterator[DagsterEvent]:
            return threaded_execution_iterator(job_context, execution_plan, limit, tags)

        pid = os.getpid()
        keys = execution_plan.step_keys_to_execute
        yield DagsterEvent.engine_event(
            plan_context,
            f"Executing steps in threads (pid: {pid}, at most {limit} at once)",
            event_specific_data=EngineEventData.in_process(pid, keys),
        )
        with time_execution_scope() as timer:
            yield from iter(
                ExecuteRunWithPlanIterable(
                    execution_plan=plan_context.execution_plan,
                    iterator=iterator,
                    execution_context_manager=PlanExecutionContextManager(
                        job=plan_context.job,
                        retry_mode=plan_context.retry_mode,
                        execution_plan=plan_context.execution_plan,
                        run_config=plan_context.run_config,
                        dagster_run=plan_context.dagster_run,
                        instance=plan_context.instance,
                        raise_on_error=plan_context.raise_on_error,
                        output_capture=plan_context.output_capture,
                    ),
                )
            )
        yield DagsterEvent.engine_event(
            plan_context,
            f"Finished steps in threads (pid: {pid}) in {format_duration(timer.millis)}",
            event_specific_data=EngineEventData.in_process(pid, keys),
        )


DEFAULT_MAX_CONCURRENT = 8


@executor(
    name="threaded",
    config_schema={
        "retries": get_retries_config(),
        "max_concurrent": Field(
            Noneable(Int),
            default_value=None,
            is_required=False,
            description=f"Most steps at once (default {DEFAULT_MAX_CONCURRENT}).",
        ),
        "tag_concurrency_limits": Field(
            Noneable([Permissive()]),
            default_value=None,
            is_required=False,
            description="Limits by op tag, as the multiprocess executor's.",
        ),
    },
)
def threaded_executor(init_context: InitExecutorContext) -> ThreadedExecutor:
    """Dagster executor definition of :class:`ThreadedExecutor` (config as multiprocess's)."""
    config: dict[str, Any] = dict(init_context.executor_config)
    return ThreadedExecutor(
        retries=RetryMode.from_config(config["retries"]) or RetryMode.ENABLED,
        max_concurrent=int(config.get("max_concurrent") or DEFAULT_MAX_CONCURRENT),
        tag_concurrency_limits=config.get("tag_concurrency_limits"),
    )
