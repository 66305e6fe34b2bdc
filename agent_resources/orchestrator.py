"""Orchestrator agents: compose other catalog agents inside one step.

Two strategies:

- ``parallel``: every listed agent gets the same input at once; the output holds each result
  (or error) and the ``choice``: the first success in ``prefer`` order.
- ``sequence``: calls in order; each call's input is a template over ``input`` (the step's
  input) and ``results`` (earlier outputs by name), rendered like orchestration templates.

Children run with their own catalog entries and env vars; their deliverables are passed on
with the child's name as a prefix.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent_resources.base import Agent, AgentError, AgentRequest, AgentResult
from agent_resources.catalog import agent_catalog
from agent_resources.types import build_agent
from baton.settings import get_settings
from orchestration_defs.language.templates import TemplateError, render


class Call(BaseModel):
    """One call of a sequence."""

    model_config = ConfigDict(extra="forbid")

    name: str
    agent: str
    input: Any = None


class OrchestratorConfig(BaseModel):
    """What an orchestrator agent composes and how."""

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["parallel", "sequence"]
    agents: list[str] = Field(default_factory=list, description="parallel: who is asked")
    prefer: list[str] = Field(default_factory=list, description="parallel: choice order")
    calls: list[Call] = Field(default_factory=list, description="sequence: the calls")
    output: Any = Field(None, description="sequence: output template; default all results")

    @model_validator(mode="after")
    def _complete(self) -> OrchestratorConfig:
        if self.strategy == "parallel" and not self.agents:
            raise ValueError("a parallel orchestrator needs 'agents'")
        if self.strategy == "sequence" and not self.calls:
            raise ValueError("a sequence orchestrator needs 'calls'")
        return self


class OrchestratorAgent(Agent):
    """Calls other agents of the catalog, in parallel or in sequence."""

    config_model = OrchestratorConfig
    config: OrchestratorConfig

    def run(self, request: AgentRequest) -> AgentResult:
        if self.config.strategy == "parallel":
            return self._parallel(request)
        return self._sequence(request)

    def _call(self, slug: str, name: str, request: AgentRequest, value: Any) -> AgentResult:
        catalog = agent_catalog()
        if slug not in catalog or slug == self.entry.slug:
            raise AgentError(
                f"orchestrator '{self.entry.slug}' cannot call '{slug}'", kind="config"
            )
        entry = catalog[slug]
        child = request.model_copy(
            update={
                "step_id": f"{request.step_id}.{name}",
                "input": value,
                "env": entry.env_values(),
            }
        )
        return build_agent(entry).run(child)

    def _parallel(self, request: AgentRequest) -> AgentResult:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(self.config.agents)) as pool:
            futures = {
                slug: pool.submit(self._call, slug, slug, request, request.input)
                for slug in self.config.agents
            }
        results: dict[str, Any] = {}
        errors: dict[str, AgentError | Exception] = {}
        for slug, future in futures.items():
            try:
                results[slug] = future.result()
            except Exception as exc:  # one child failing must not hide the others
                errors[slug] = exc
        if not results:
            retryable = any(getattr(e, "retryable", True) for e in errors.values())
            summary = "; ".join(f"{slug}: {exc}" for slug, exc in errors.items())
            raise AgentError(
                f"every agent failed: {summary}",
                retryable=retryable,
                kind="server" if retryable else "client",
            )
        order = self.config.prefer + [s for s in self.config.agents if s not in self.config.prefer]
        choice = next(slug for slug in order if slug in results)
        output = {
            "choice": choice,
            "chosen": results[choice].output,
            "results": {slug: r.output for slug, r in results.items()},
            "errors": {slug: str(exc) for slug, exc in errors.items()},
        }
        return _combined(output, results, started)

    def _sequence(self, request: AgentRequest) -> AgentResult:
        started = time.monotonic()
        # The templates of the calls render within the step's timeout, like the calls.
        deadline = started + request.timeout_seconds if request.timeout_seconds else None
        limits = get_settings().limits.templates()
        results: dict[str, AgentResult] = {}
        for call in self.config.calls:
            context = {
                "input": request.input,
                "results": {name: r.output for name, r in results.items()},
            }
            try:
                value = render(call.input, context, field="input", limits=limits, deadline=deadline)
            except TemplateError as exc:
                raise AgentError(f"call '{call.name}': {exc}", kind="validation") from exc
            results[call.name] = self._call(call.agent, call.name, request, value)
        context = {
            "input": request.input,
            "results": {name: r.output for name, r in results.items()},
        }
        try:
            output = context["results"]
            if self.config.output is not None:
                output = render(
                    self.config.output, context, field="output", limits=limits, deadline=deadline
                )
        except TemplateError as exc:
            raise AgentError(f"output: {exc}", kind="validation") from exc
        return _combined(output, results, started)


def _combined(output: Any, results: dict[str, AgentResult], started: float) -> AgentResult:
    deliverables = [
        d.model_copy(update={"name": f"{name}-{d.name}"})
        for name, result in results.items()
        for d in result.deliverables
    ]
    usage: dict[str, Any] = {name: r.usage for name, r in results.items()}
    usage["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
    return AgentResult(output=output, usage=usage, deliverables=deliverables)
