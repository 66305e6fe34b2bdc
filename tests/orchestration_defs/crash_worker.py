"""A run worker for the crash tests: runs the two-step job in a process the test SIGKILLs.

``python -m tests.orchestration_defs.crash_worker DAGSTER_HOME DB_URL AGENT_URL RUN_ID``
executes one segment of ``FLOW`` on the Dagster instance in DAGSTER_HOME, Baton's tables at
DB_URL, every agent call a POST to AGENT_URL/<step id>.
"""

from __future__ import annotations

import json
import sys
import urllib.request

from dagster import DagsterInstance

from agent_resources.base import AgentRequest, AgentResult
from agent_resources.resources import AgentResource
from tests.helpers import compile_text, execute

FLOW = """
slug: crash
name: Crash
version: 1
steps:
  - id: a
    agent: echo
    with: {n: 1}
  - id: b
    needs: [a]
    agent: echo
    with: {n: 2}
"""


class PostingAgent(AgentResource):
    """Each call is one POST to ``base_url``/<step id> carrying the call's Idempotency-Key; the
    answer's JSON is the output."""

    base_url: str

    def run(self, *, request: AgentRequest) -> AgentResult:
        body = json.dumps(
            {"attempt": request.attempt, "call": request.call, "input": request.input}
        ).encode()
        post = urllib.request.Request(
            f"{self.base_url}/{request.step_id}",
            data=body,
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": request.idempotency_key,
            },
        )
        with urllib.request.urlopen(post, timeout=300) as answer:
            return AgentResult(output=json.loads(answer.read() or b"null"))


def main(home: str, url: str, agent_url: str, run_id: str) -> None:
    _, job = compile_text(FLOW, url)
    instance = DagsterInstance.local_temp(home)
    execute(job, instance, url, agent=PostingAgent(base_url=agent_url), run_id=run_id)


if __name__ == "__main__":
    main(*sys.argv[1:5])
