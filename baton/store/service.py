"""The store as the ops, the CLI and sensors use it: each method is one transaction.

A step's output is written in the same transaction that marks it completed, together with
its event, so a segment that starts later sees either both or neither.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from baton.assets import AssetStore
from baton.compensation import plan as plan_compensation
from baton.db.engine import session_scope
from baton.db.models import (
    Deliverable,
    OrchestrationDefinition,
    OrchestrationEvent,
    OrchestrationRun,
)
from baton.db.models import OrchestrationStep as StepRow
from baton.secrets import Masker, masker_from_env
from baton.state import DONE_STEP_STATUSES, TERMINAL_RUN_STATUSES, IllegalTransition
from baton.store.agents import AgentsRepository
from baton.store.cache import StepCache
from baton.store.definitions import DefinitionsRepository
from baton.store.deliverables import DeliverablesRepository
from baton.store.events import EventsRepository
from baton.store.runs import RunsRepository
from baton.store.steps import Moved, StepsRepository, segment_is


class UnknownRun(LookupError):
    """No orchestration run with that id."""


class Superseded(Exception):
    """This Dagster run is not the run's active segment: a newer one took over, or the run
    ended. It must do no work (design notes: one active segment per run)."""


@dataclass(frozen=True)
class StepPlan:
    """A step as the store needs to know it when a segment starts."""

    step_id: str
    kind: str
    agent: str | None


@dataclass(frozen=True)
class Segment:
    """What a starting Dagster run learns about the orchestration run it continues."""

    run_id: uuid.UUID
    organization: str
    orchestration: str
    version: int
    inputs: dict[str, Any]
    # A child's parent: its end must advance the parent's step (None for most runs).
    parent_run_id: uuid.UUID | None = None


@dataclass(frozen=True)
class StartedCall:
    """A started attempt: Dagster's try number and the logical call's (the key's counter)."""

    attempt: int
    call: int


@dataclass(frozen=True)
class StepMemo:
    """A finished step's stored result."""

    status: str
    output: Any
    # An operator skipped the step with this output: later steps take it as a result.
    given: bool = False


def _memo(row: StepRow | None) -> StepMemo | None:
    if row is None or row.status not in DONE_STEP_STATUSES:
        return None
    given = row.status == "skipped" and bool((row.error or {}).get("given_output"))
    return StepMemo(row.status, row.output, given)


@dataclass(frozen=True)
class StepReads:
    """What an agent step reads before it starts (``RunStore.step_reads``)."""

    memo: StepMemo | None
    replacement: Any | None
    override: dict[str, Any] | None


@dataclass(frozen=True)
class StepEntry:
    """How a step entered (``RunStore.enter_step``): it was done already (``memo``), it is
    skipped now (``skipped``), or an attempt started (``started``, with the input it calls
    with: the rendered one, or an operator's replacement, with an approver's changes)."""

    memo: StepMemo | None = None
    skipped: bool = False
    started: StartedCall | None = None
    input: Any = None


@dataclass(frozen=True)
class DeliverableRecord:
    """A stored deliverable, detached from its session."""

    id: uuid.UUID
    step_id: str
    name: str
    type: str
    version: int
    asset_uri: str | None
    mime_type: str | None
    size_bytes: int | None
    content: Any

    @classmethod
    def of(cls, row: Deliverable) -> DeliverableRecord:
        return cls(
            row.id,
            row.step_id,
            row.name,
            row.type,
            row.version,
            row.asset_uri,
            row.mime_type,
            row.size_bytes,
            row.content,
        )


@dataclass(frozen=True)
class RunDetail:
    """A run with its steps and events, for ``baton runs show``."""

    run: OrchestrationRun
    steps: Sequence[StepRow]
    events: Sequence[OrchestrationEvent]
    children: Sequence[OrchestrationRun]


class RunStore:
    """Transactional operations on Baton's tables at one database URL."""

    def __init__(self, url: str, masker: Masker | None = None) -> None:
        self.url = url
        self._masker = masker

    def mask(self, value: Any) -> Any:
        """``value`` with secrets masked: nothing reaches the tables in clear."""
        if self._masker is None:
            self._masker = masker_from_env()
        return self._masker.mask(value)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_scope(self.url) as session:
            yield session

    @property
    def cache(self) -> StepCache:
        """The step cache (``baton.store.cache``) on this store's database and masker."""
        return StepCache(self)

    # definitions ------------------------------------------------------------------------

    def register_definition(
        self,
        *,
        organization: str,
        slug: str,
        version: int,
        name: str,
        spec: dict[str, Any],
        checksum: str,
        description: str | None,
        source_path: str | None,
    ) -> int:
        """Store a definition version (idempotent); returns its id.

        Raises:
            DefinitionConflict: that version is stored with other content.
        """
        with self.session() as s:
            row = DefinitionsRepository(s).upsert(
                organization=organization,
                slug=slug,
                version=version,
                name=name,
                spec=spec,
                checksum=checksum,
                description=description,
                source_path=source_path,
            )
            return row.id

    def unfinished_versions(self) -> list[tuple[str, int, dict[str, Any]]]:
        """(slug, version, spec) of every version that unfinished runs started on."""
        with self.session() as s:
            rows = DefinitionsRepository(s).with_unfinished_runs()
            return [(row.slug, row.version, dict(row.spec)) for row in rows]

    # runs -------------------------------------------------------------------------------

    def create_run(
        self,
        *,
        organization: str,
        slug: str,
        version: int,
        inputs: dict[str, Any],
        created_by: str | None = None,
        run_id: uuid.UUID | None = None,
        segment: str | None = None,
    ) -> uuid.UUID:
        """A new pending run of a stored definition version; ``segment`` is the id of the
        segment that will start it, when known."""
        with self.session() as s:
            definition = self._definition(s, organization, slug, version)
            run = RunsRepository(s).create(
                definition, inputs=self.mask(inputs), run_id=run_id, created_by=created_by
            )
            run.segment_id = segment
            EventsRepository(s).append(
                organization=organization,
                type="run.created",
                run_id=run.id,
                payload={"orchestration": slug, "version": version, "created_by": created_by},
            )
            return run.id

    def begin_segment(
        self,
        *,
        run_id: uuid.UUID,
        dagster_run_id: str,
        steps: Sequence[StepPlan],
        segment: str | None = None,
        takeover_from: str | None = None,
    ) -> Segment:
        """Mark the run running for a new Dagster run and make sure every step has a row.

        ``segment`` is the Dagster run's segment id; it must be the run's active one. A Dagster
        re-execution passes ``takeover_from`` (the segment it was copied from) and becomes the
        active segment if, and only if, that one still was: of two re-executions started at
        once, one wins.

        Raises:
            UnknownRun: no such run.
            Superseded: another segment is active, or the run already ended.
        """
        with self.session() as s:
            runs = RunsRepository(s)
            run = runs.get(run_id)
            if run is None:
                raise UnknownRun(f"no orchestration run {run_id}")
            if run.status in ("completed", "aborted"):
                raise Superseded(f"orchestration run {run_id} is {run.status}; nothing to do")
            if run.segment_id is None or takeover_from is not None:
                # No segment claimed the run yet (a UI launch, a run of an older Baton): this one
                # does; a re-execution takes over from the segment it re-executes.
                expected = None if run.segment_id is None else takeover_from
                if not runs.swap_segment(run_id, expected, segment or dagster_run_id):
                    raise Superseded(
                        f"orchestration run {run_id} continues in another segment "
                        f"({runs.segment_of(run_id)}); this Dagster run does nothing"
                    )
            elif run.segment_id != segment:
                raise Superseded(
                    f"orchestration run {run_id} continues in segment {run.segment_id}, "
                    f"not {segment}; this Dagster run does nothing"
                )
            if run.status != "running":  # a crashed segment's successor keeps 'running'
                run = runs.transition(run_id, "running", error=None)
            runs.set_dagster_run(run_id, dagster_run_id)
            if run.launch_claimed_by is not None:  # the claim that launched it is fulfilled
                runs.clear_launch_claim(run_id)
            StepsRepository(s).ensure_all(run_id, [(p.step_id, p.kind, p.agent) for p in steps])
            EventsRepository(s).append(
                organization=run.organization,
                type="run.segment_started",
                run_id=run_id,
                payload={"dagster_run_id": dagster_run_id, "segment": run.segment_id},
            )
            return Segment(
                run.id,
                run.organization,
                run.orchestration,
                run.version,
                dict(run.inputs),
                run.parent_run_id,
            )

    def check_segment(self, run_id: uuid.UUID, segment: str) -> None:
        """Raise ``Superseded`` unless ``segment`` is the run's active segment."""
        with self.session() as s:
            _require_segment(RunsRepository(s), run_id, segment)

    def reopen_failed(self, run_id: uuid.UUID, *, dagster_run_id: str) -> bool:
        """Mark a failed run running again for a Dagster re-execution; False if not failed.

        The re-execution becomes the run's active segment in the same transaction.
        """
        with self.session() as s:
            runs = RunsRepository(s)
            run = runs.get(run_id)
            if run is None or run.status != "failed":
                return False
            try:
                run = runs.transition(run_id, "running", error=None, segment_id=dagster_run_id)
            except IllegalTransition:  # reopened concurrently
                return False
            runs.set_dagster_run(run_id, dagster_run_id)
            EventsRepository(s).append(
                organization=run.organization,
                type="run.segment_started",
                run_id=run_id,
                payload={"dagster_run_id": dagster_run_id, "reexecution": True},
            )
            return True

    def complete_run(self, run_id: uuid.UUID, outputs: dict[str, Any]) -> None:
        outputs = self.mask(outputs)
        with self.session() as s:
            run = RunsRepository(s).transition(run_id, "completed", outputs=outputs)
            EventsRepository(s).append(
                organization=run.organization,
                type="run.completed",
                run_id=run_id,
                payload={"outputs": outputs},
            )

    def fail_run(self, run_id: uuid.UUID, error: dict[str, Any]) -> bool:
        """Mark the run failed unless it already ended; returns whether it changed."""
        with self.session() as s:
            runs = RunsRepository(s)
            run = runs.get(run_id)
            if run is None or run.status in TERMINAL_RUN_STATUSES:
                return False
            error = self.mask(error)
            try:
                run = runs.transition(run_id, "failed", error=error)
            except IllegalTransition:
                return False
            EventsRepository(s).append(
                organization=run.organization, type="run.failed", run_id=run_id, payload=error
            )
            # In the failure's transaction: planned exactly once; the compensation sensor
            # launches it (a run worker has no launcher).
            plan_compensation(s, run, "failed")
            return True

    def fail_run_of_segment(
        self, run_id: uuid.UUID, segment: str | None, error: dict[str, Any]
    ) -> bool:
        """``fail_run``, but only if ``segment`` is the run's active one (or none is known):
        a superseded Dagster run that failed says nothing about the run."""
        with self.session() as s:
            current = RunsRepository(s).segment_of(run_id)
        if segment is not None and current is not None and current != segment:
            return False
        return self.fail_run(run_id, error)

    def running_in(self, run_id: uuid.UUID, dagster_run_id: str) -> list[str]:
        """Steps of the run still ``running`` with that Dagster run as their owner: orphans
        once it ended, which the reaper fails (and retries under their policy)."""
        with self.session() as s:
            return [
                step.step_id
                for step in StepsRepository(s).list(run_id)
                if step.status == "running" and step.dagster_run_id == dagster_run_id
            ]

    def get_run(self, run_id: uuid.UUID) -> OrchestrationRun:
        with self.session() as s:
            run = RunsRepository(s).get(run_id)
            if run is None:
                raise UnknownRun(f"no orchestration run {run_id}")
            return run

    def list_runs(self, **filters: Any) -> Sequence[OrchestrationRun]:
        with self.session() as s:
            return RunsRepository(s).list(**filters)

    def run_detail(self, run_id: uuid.UUID) -> RunDetail:
        with self.session() as s:
            runs = RunsRepository(s)
            run = runs.get(run_id)
            if run is None:
                raise UnknownRun(f"no orchestration run {run_id}")
            return RunDetail(
                run,
                StepsRepository(s).list(run_id),
                EventsRepository(s).list(run_id=run_id),
                runs.children(run_id),
            )

    # steps ------------------------------------------------------------------------------

    def step_memo(self, run_id: uuid.UUID, step_id: str) -> StepMemo | None:
        """The stored result if the step already completed or was skipped."""
        with self.session() as s:
            return _memo(StepsRepository(s).get(run_id, step_id))

    def step_reads(self, run_id: uuid.UUID, step_id: str) -> StepReads:
        """What an agent step reads before its call, in one transaction (not three: a step's
        cost over a plain op is mostly its transactions): its memo, an operator's
        replacement input and an approver's changes."""
        with self.session() as s:
            row = StepsRepository(s).get(run_id, step_id)
            if row is None:
                return StepReads(None, None, None)
            return StepReads(_memo(row), row.input_replacement, row.input_override)

    def enter_step(
        self,
        run_id: uuid.UUID,
        step_id: str,
        *,
        rendered: Any,
        skip: str | None,
        dagster_run_id: str,
        segment: str,
        retry: bool = False,
    ) -> StepEntry:
        """An agent step's way in, in one transaction: its memo when it is done already, else
        its skip (``skip``: why), else a new attempt with the input it calls with (an
        operator's replacement of ``rendered``, or ``rendered`` with an approver's changes).

        Raises:
            Superseded: ``segment`` is no longer the run's active segment.
            IllegalTransition: the step moved meanwhile (an operator skipped it).
        """
        with self.session() as s:
            steps = StepsRepository(s)
            # Optimistic: the move itself is the memo check (a done step can move to neither),
            # so the common way in is one UPDATE; only a refused move reads why.
            try:
                if skip is not None:  # a superseded segment skips nothing either
                    steps.transition(
                        run_id,
                        step_id,
                        "skipped",
                        output=None,
                        error={"reason": skip},
                        also=(segment_is(run_id, segment),),
                    )
                    self._event(s, run_id, "step.skipped", {"step_id": step_id, "reason": skip})
                    return StepEntry(skipped=True)
                row, started = self._start_row(
                    s,
                    run_id,
                    step_id,
                    rendered,
                    dagster_run_id=dagster_run_id,
                    retry=retry,
                    segment=segment,
                )
            except IllegalTransition:
                memo = _memo(steps.get(run_id, step_id))
                if memo is not None:
                    return StepEntry(memo=memo)
                _require_segment(RunsRepository(s), run_id, segment)
                raise
            given = call_input(rendered, row.input_replacement, row.input_override)
            if given is not rendered:
                steps.set_input(run_id, step_id, self.mask(given))
            return StepEntry(started=started, input=given)

    def start_step(
        self,
        run_id: uuid.UUID,
        step_id: str,
        *,
        input: Any,
        dagster_run_id: str,
        segment: str | None = None,
    ) -> int:
        """Record a new attempt with its rendered input; returns the attempt number.

        Raises:
            Superseded: ``segment`` is given and is no longer the run's active segment.
        """
        started = self.start_call(
            run_id, step_id, input=input, dagster_run_id=dagster_run_id, segment=segment
        )
        return started.attempt

    def start_call(
        self,
        run_id: uuid.UUID,
        step_id: str,
        *,
        input: Any,
        dagster_run_id: str,
        segment: str | None = None,
        retry: bool = False,
    ) -> StartedCall:
        """Record a new attempt; returns its number and the logical call's (``retry``: the
        step's retry policy asked for this attempt, so it is a new call).

        Raises:
            Superseded: ``segment`` is given and is no longer the run's active segment.
        """
        with self.session() as s:
            try:
                _, started = self._start_row(
                    s,
                    run_id,
                    step_id,
                    input,
                    dagster_run_id=dagster_run_id,
                    retry=retry,
                    segment=segment,
                )
            except IllegalTransition:
                if segment is not None:  # the UPDATE also refuses a superseded segment: say so
                    _require_segment(RunsRepository(s), run_id, segment)
                raise
            return started

    def _start_row(
        self,
        s: Session,
        run_id: uuid.UUID,
        step_id: str,
        input: Any,
        *,
        dagster_run_id: str,
        segment: str | None,
        retry: bool,
    ) -> tuple[Moved, StartedCall]:
        row = StepsRepository(s).begin_attempt(
            run_id,
            step_id,
            input=self.mask(input),
            dagster_run_id=dagster_run_id,
            retry=retry,
            segment=segment,
        )
        payload = {"step_id": step_id, "attempt": row.attempt, "call": row.call_number}
        self._event(s, run_id, "step.started", {**payload, "dagster_run_id": dagster_run_id})
        return row, StartedCall(row.attempt, row.call_number)

    def complete_step(
        self,
        run_id: uuid.UUID,
        step_id: str,
        *,
        output: Any,
        usage: dict[str, Any] | None = None,
        attempt: int | None = None,
    ) -> None:
        """Store the step's output; with ``attempt``, only while that attempt is the latest,
        so the row never shows one attempt's output under another's number.

        Raises:
            IllegalTransition: the step is not running, or a newer attempt started.
        """
        with self.session() as s:
            row = StepsRepository(s).complete_attempt(
                run_id, step_id, output=self.mask(output), of_attempt=attempt
            )
            payload = {"step_id": step_id, "attempt": row.attempt, "call": row.call_number}
            self._event(s, run_id, "step.completed", {**payload, "usage": self.mask(usage or {})})

    def skip_step(self, run_id: uuid.UUID, step_id: str, *, reason: str) -> None:
        with self.session() as s:
            StepsRepository(s).transition(
                run_id, step_id, "skipped", output=None, error={"reason": reason}
            )
            self._event(s, run_id, "step.skipped", {"step_id": step_id, "reason": reason})

    def fail_step(
        self, run_id: uuid.UUID, step_id: str, *, error: dict[str, Any], will_retry: bool
    ) -> None:
        error = self.mask(error)
        with self.session() as s:
            row = StepsRepository(s).transition(run_id, step_id, "failed", error=error)
            self._event(
                s,
                run_id,
                "step.failed",
                {"step_id": step_id, "attempt": row.attempt, "will_retry": will_retry, **error},
            )

    # deliverables and agents -------------------------------------------------------------

    def add_deliverables(
        self,
        *,
        run_id: uuid.UUID,
        step_id: str,
        attempt: int,
        dagster_run_id: str,
        drafts: Sequence[Any],
        assets: AssetStore,
    ) -> list[DeliverableRecord]:
        """Store a step's deliverables; bytes go to the asset store, the rest to the table."""
        records: list[DeliverableRecord] = []
        if not drafts:  # most steps: no transaction at all
            return records
        with self.session() as s:
            repo = DeliverablesRepository(s)
            for draft in drafts:
                version = repo.next_version(run_id, step_id, draft.name)
                uri = None
                if draft.data is not None:
                    uri = assets.put(f"{run_id}/{step_id}/v{version}-{draft.name}", draft.data)
                row = repo.add(
                    run_id=run_id,
                    step_id=step_id,
                    name=draft.name,
                    type=draft.type,
                    content=self.mask(draft.content),
                    asset_uri=uri,
                    mime_type=draft.mime_type,
                    size_bytes=len(draft.data) if draft.data is not None else None,
                    meta=self.mask(draft.metadata),
                    version=version,
                    attempt=attempt,
                    dagster_run_id=dagster_run_id,
                )
                records.append(DeliverableRecord.of(row))
                self._event(
                    s,
                    run_id,
                    "deliverable.created",
                    {
                        "step_id": step_id,
                        "deliverable_id": str(row.id),
                        "name": row.name,
                        "type": row.type,
                        "version": version,
                        "asset_uri": uri,
                    },
                )
        return records

    def deliverables(self, run_id: uuid.UUID) -> list[DeliverableRecord]:
        with self.session() as s:
            return [DeliverableRecord.of(r) for r in DeliverablesRepository(s).list(run_id)]

    def seed_agents(self, entries: Sequence[dict[str, Any]]) -> int:
        """Store the catalog entries (idempotent); returns how many changed."""
        with self.session() as s:
            return AgentsRepository(s).seed(entries)

    # helpers ----------------------------------------------------------------------------

    @staticmethod
    def _definition(
        s: Session, organization: str, slug: str, version: int
    ) -> OrchestrationDefinition:
        definition = DefinitionsRepository(s).get(organization, slug, version)
        if definition is None:
            raise LookupError(f"definition {organization}/{slug} v{version} is not stored")
        return definition

    @staticmethod
    def _event(s: Session, run_id: uuid.UUID, type_: str, payload: dict[str, Any]) -> None:
        EventsRepository(s).append_for_run(type=type_, run_id=run_id, payload=payload)


def call_input(rendered: Any, replacement: Any | None, override: dict[str, Any] | None) -> Any:
    """The input a step calls with: an operator's ``replacement`` (a retry with a new input)
    wins over ``rendered``; an approver's changes (``override``, a retry decision) are laid over
    a dict."""
    given = replacement if replacement is not None else rendered
    if override and isinstance(given, dict):
        given = {**given, **override}
    return given


def _require_segment(runs: RunsRepository, run_id: uuid.UUID, segment: str) -> None:
    run = runs.get(run_id, include_deleted=True)
    if run is not None and run.status in ("aborted", "completed"):
        raise Superseded(f"orchestration run {run_id} is {run.status}; this Dagster run stops here")
    current = run.segment_id if run is not None else None
    if current is not None and current != segment:
        raise Superseded(
            f"orchestration run {run_id} continues in segment {current}, not {segment}; "
            "this Dagster run stops here"
        )
