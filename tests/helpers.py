"""Helpers for tests: writing libraries, building jobs, test agents."""

from __future__ import annotations

import textwrap
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, Definitions, ExecuteInProcessResult, JobDefinition

from agent_resources.base import AgentError, AgentRequest, AgentResult, DeliverableDraft
from agent_resources.resources import AgentResource, EchoAgentResource
from baton.store.service import RunStore
from orchestration_defs.compiler.job import build_job
from orchestration_defs.compiler.resources import BatonStoreResource
from orchestration_defs.language.library import load_text, spec_checksum
from orchestration_defs.language.models import OrchestrationSpec


def write_library(folder: Path, files: dict[str, str]) -> Path:
    """Write YAML files (dedented) into ``folder`` and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip())
    return folder


PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32

# Dagster copies resources before a run, so call counts live here, keyed by the agent's key.
CALLS: dict[str, Counter[str]] = defaultdict(Counter)
_LOCK = threading.Lock()


class ScriptedAgent(AgentResource):
    """Echoes its input, but can fail or sleep on chosen steps; counts calls per step.

    ``fail`` maps a step id to how many of its first calls fail (``retryable`` says how);
    ``sleep`` maps a step id to seconds to sleep. Counts are in ``CALLS[key]``.
    """

    key: str
    fail: dict[str, int] = {}
    retryable: bool = True
    sleep: dict[str, float] = {}
    retry_after: float | None = None
    deliver: bool = False
    leak: str = ""

    def run(self, *, request: AgentRequest) -> AgentResult:
        with _LOCK:
            CALLS[self.key][request.step_id] += 1
            count = CALLS[self.key][request.step_id]
        if request.step_id in self.sleep:
            time.sleep(self.sleep[request.step_id])
        if count <= self.fail.get(request.step_id, 0):
            raise AgentError(
                f"scripted failure {count} of {request.step_id}{self.leak}",
                retryable=self.retryable,
                retry_after=self.retry_after,
            )
        drafts = [
            DeliverableDraft(
                type="image",
                name="picture.png",
                data=PNG_BYTES,
                mime_type="image/png",
                metadata={"note": self.leak},
            )
        ]
        output = {"echo": request.input, "leak": self.leak} if self.leak else request.input
        return AgentResult(
            output=output, usage={"calls": count}, deliverables=drafts if self.deliver else []
        )


def register(spec: OrchestrationSpec, url: str) -> None:
    """Store the spec's definition row, as the code location does at load."""
    RunStore(url).register_definition(
        organization=spec.organization,
        slug=spec.slug,
        version=spec.version,
        name=spec.name,
        spec=spec.model_dump(mode="json", by_alias=True),
        checksum=spec_checksum(spec),
        description=spec.description,
        source_path=None,
    )


def compile_text(text: str, url: str) -> tuple[OrchestrationSpec, JobDefinition]:
    """Parse, register and compile one definition given as YAML text."""
    spec, errors = load_text(textwrap.dedent(text), source="test.yaml", known_agents={"echo"})
    assert not errors, [str(e) for e in errors]
    assert spec is not None
    register(spec, url)
    return spec, build_job(spec)


def execute(
    job: JobDefinition,
    instance: DagsterInstance,
    url: str,
    *,
    agent: AgentResource | None = None,
    inputs: dict[str, Any] | None = None,
    run_id: str = "",
) -> ExecuteInProcessResult:
    """Run a compiled job on a real instance with Baton's store at ``url``."""
    resources: dict[str, Any] = {
        "baton_store": BatonStoreResource(database_url=url),
        "agent_echo": agent or EchoAgentResource(slug="echo"),
    }
    return job.execute_in_process(
        run_config={"inputs": inputs or {}, "baton_run_id": run_id},
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )


def scripted_job(text: str, url: str, key: str, fail: dict[str, int]) -> JobDefinition:
    """A compiled job with its resources bound (a ScriptedAgent as ``echo``).

    Module level so ``build_reconstructable_job`` can rebuild it, as Dagster's re-execution
    needs a reconstructable job.
    """
    spec, errors = load_text(textwrap.dedent(text), source="test.yaml", known_agents={"echo"})
    assert spec is not None, errors
    resources = {
        "baton_store": BatonStoreResource(database_url=url),
        "agent_echo": ScriptedAgent(key=key, fail=fail),
    }
    return Definitions(jobs=[build_job(spec)], resources=resources).get_job_def(spec.job_name)
