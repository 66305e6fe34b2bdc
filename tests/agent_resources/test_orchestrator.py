"""The orchestrator agent's ``sequence`` strategy (no shipped entry uses it since finance-manager
became a library orchestration): calls in order, each input templated over the step's input
and earlier results, and an output template; the real supabase-agent and summarizer, offline."""

from __future__ import annotations

import pytest

from agent_resources.base import AgentError, AgentRequest
from agent_resources.catalog import AgentEntry
from agent_resources.orchestrator import OrchestratorAgent

KPI_DIGEST = {
    "slug": "kpi-digest",
    "type": "orchestrator",
    "description": "Totals of a period, then their summary, in one step.",
    "config": {
        "strategy": "sequence",
        "calls": [
            {
                "name": "totals",
                "agent": "supabase-agent",
                "input": {
                    "query": "region_totals",
                    "params": {"start_month": "{{ input.start }}", "end_month": "{{ input.end }}"},
                },
            },
            {
                "name": "summary",
                "agent": "summarizer",
                "input": {"rows": "{{ results.totals.rows }}"},
            },
        ],
        "output": {
            "period": "{{ input.start }} to {{ input.end }}",
            "regions": "{{ results.totals.rows | length }}",
            "summary": "{{ results.summary.summary }}",
        },
    },
}


def _run(config_update: dict[str, object] | None = None, **given: str) -> dict[str, object]:
    data = dict(KPI_DIGEST)
    data["config"] = {**KPI_DIGEST["config"], **(config_update or {})}  # type: ignore[dict-item]
    agent = OrchestratorAgent(AgentEntry.model_validate(data))
    request = AgentRequest(run_id="r", step_id="digest", attempt=1, input=given)
    return dict(agent.run(request).output)


def test_a_sequence_feeds_each_call_the_results_before_it() -> None:
    output = _run(start="2025-01", end="2025-03")
    assert output["period"] == "2025-01 to 2025-03"
    assert output["regions"] == 4
    assert str(output["summary"]).startswith("4 rows; region: NA, EMEA, APAC, LATAM")


def test_a_call_whose_template_fails_names_the_call() -> None:
    with pytest.raises(AgentError) as caught:
        _run(start="2025-01")  # no input.end
    assert caught.value.kind == "validation"
    assert "call 'totals'" in str(caught.value)
