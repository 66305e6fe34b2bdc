"""The world of the approvals page tests: runs paused at checkpoints in two organizations on a
real Dagster instance, users, and API tokens of each role."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from dagster import DagsterInstance, JobDefinition

from baton.db.engine import session_scope
from baton.settings import Settings
from baton.store.tokens import TokensRepository
from baton.store.users import UsersRepository
from tests.checkpoint_helpers import start, users
from tests.helpers import ScriptedAgent, compile_text

XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'

REVIEW = """
slug: review-flow
name: Review flow
version: 1
inputs:
  topic: {type: string, default: dagster}
steps:
  - id: draft
    agent: echo
    with: {title: "{{ inputs.topic }}", words: 100, body: "line one\\nline two"}
  - id: review
    checkpoint:
      prompt: "Publish {{ steps.draft.output.title }}?"
      show: "{{ steps.draft.output }}"
      modifiable: {title: string, words: integer}
      approvers: [editors]
  - id: publish
    agent: echo
    with:
      post: "{{ steps.review.output.value }}"
      by: "{{ steps.review.output.decided_by }}"
outputs:
  post: "{{ steps.publish.output.post }}"
  by: "{{ steps.publish.output.by }}"
"""

ACME = """
slug: acme-flow
name: Acme flow
organization: acme
version: 1
steps:
  - id: draft
    agent: echo
    with: {secret: "acme quarterly numbers"}
  - id: review
    checkpoint:
      prompt: "Release the acme numbers?"
      show: "{{ steps.draft.output }}"
"""

DAGSTER_UI = "http://127.0.0.1:3999"


@dataclass
class Deployment:
    """What a page test needs: the instance, Baton's database, the job and the tokens."""

    instance: DagsterInstance
    url: str
    job: JobDefinition
    agent_key: str
    run_id: uuid.UUID
    acme_run_id: uuid.UUID
    tokens: dict[str, str]

    @property
    def settings(self) -> Settings:
        return Settings(
            database_url=self.url,  # type: ignore[arg-type]
            dagster={"ui_url": DAGSTER_UI},  # type: ignore[arg-type]
        )

    def agent(self) -> ScriptedAgent:
        return ScriptedAgent(key=self.agent_key)


def _token(url: str, org: str, name: str, role: str) -> str:
    with session_scope(url) as s:
        user = UsersRepository(s).get(org, name)
        assert user is not None
        return TokensRepository(s).create(user, role=role, name="page test")[1]


def build_deployment(instance: DagsterInstance, topic: str = XSS) -> Deployment:
    """Two paused runs (one per organization), users and a token per role."""
    url = instance.baton_db_url  # type: ignore[attr-defined]
    users(url, ("ann", ["editors"]), ("eve", ["sales"]), ("vic", ["editors"]))
    users(url, ("olga", ["editors"]), org="acme")
    _, job = compile_text(REVIEW, url)
    _, acme_job = compile_text(ACME, url)
    key = uuid.uuid4().hex
    run_id = start(job, instance, url, agent=ScriptedAgent(key=key), inputs={"topic": topic})
    acme_run_id = start(acme_job, instance, url)
    tokens = {
        "ann": _token(url, "global", "ann", "approver"),
        "eve": _token(url, "global", "eve", "approver"),
        "vic": _token(url, "global", "vic", "viewer"),
        "olga": _token(url, "acme", "olga", "admin"),
    }
    return Deployment(instance, url, job, key, run_id, acme_run_id, tokens)


def csrf_of(html: str) -> str:
    """The value of the first hidden ``csrf`` field of a page."""
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None, "no CSRF field on the page"
    return match.group(1)
