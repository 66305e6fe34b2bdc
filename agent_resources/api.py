"""The ``api`` agent: an n8n-style workflow called over HTTP, answered at once or polled."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field

from agent_resources.base import Agent, AgentError, AgentRequest, AgentResult
from agent_resources.http import EXCERPT_CHARS, call_json, cancellable_client, dig, masker_for
from baton.secrets import Masker

_FAILED_STATUSES = frozenset({"error", "failed", "crashed"})
_CANCELED_STATUSES = frozenset({"canceled", "cancelled"})


class ApiConfig(BaseModel):
    """How to reach the workflow."""

    model_config = ConfigDict(extra="forbid")

    webhook_path: str = Field(pattern=r"^/", description="Appended to the base URL.")
    mode: Literal["sync", "poll"] = "sync"
    payload_key: str | None = Field(None, description="Send the input under this key.")
    base_url_env: str = "N8N_BASE_URL"
    api_key_env: str = "N8N_API_KEY"
    auth_header: str = "X-N8N-API-KEY"
    execution_id_field: str = Field("executionId", description="Dotted path in the POST answer.")
    status_path: str = Field("/api/v1/executions/{id}", pattern=r"^/")
    poll_interval_seconds: float = Field(2.0, gt=0)
    result_field: str | None = Field("data", description="Dotted path; None: whole execution.")
    retry_failed_executions: bool = True
    without_base_url: Literal["fail", "dry_run"] = Field(
        "fail",
        description=(
            "When the base URL's env var is unset: fail with a config error, or send nothing "
            "and answer what would have been sent (offline defaults for publishing agents)."
        ),
    )


class ApiAgent(Agent):
    """POSTs the step input to a workflow webhook and returns the workflow's JSON result.

    ``sync`` mode returns the POST's answer. ``poll`` mode reads an execution id from it, then
    GETs the status path every ``poll_interval_seconds`` until the execution is finished
    (``finished: true`` or status ``success``) and returns its ``result_field``. Choices:

    - an execution with status error/failed/crashed raises kind ``server``, retryable unless
      ``retry_failed_executions`` is false (a workflow failing on a flaky upstream is common);
      a canceled execution raises kind ``server``, never retryable (a person stopped it);
    - transient errors while polling (429, 5xx, timeouts) do not fail the call: polling goes
      on until the deadline, since failing would make the step re-trigger the workflow;
    - past the deadline (request or entry ``timeout_seconds``) it raises kind ``timeout``;
    - with ``without_base_url: dry_run`` and the base URL unset, nothing is sent: the output
      says ``dry_run: true`` and holds the payload (a publisher that works offline by default).

    Every request carries ``Idempotency-Key``; secrets are masked in messages and output.
    """

    config_model = ApiConfig
    config: ApiConfig

    def run(self, request: AgentRequest) -> AgentResult:
        if self._is_dry_run(request.env):
            return self._dry_run(request)
        base_url = self._base_url(request.env)
        key = request.env.get(self.config.api_key_env, "")
        masker = masker_for(self.entry, request.env, [key])
        timeout = request.timeout_seconds or self.entry.limits.timeout_seconds
        started = time.monotonic()
        headers = self._headers(request, key)
        with cancellable_client(request.cancellation, timeout=timeout, headers=headers) as client:
            url = base_url + self.config.webhook_path
            payload = self._payload(request.input)
            answer = call_json(client, "POST", url, masker=masker, content=payload)
            usage: dict[str, Any] = {}
            if self.config.mode == "poll":
                deadline = started + timeout
                answer, usage = self._poll(client, base_url, answer, deadline, masker, request)
        usage["latency_ms"] = round((time.monotonic() - started) * 1000)
        return AgentResult(output=masker.mask(answer), usage=usage)

    def _is_dry_run(self, env: Mapping[str, str]) -> bool:
        unset = not env.get(self.config.base_url_env, "").strip()
        return unset and self.config.without_base_url == "dry_run"

    def _dry_run(self, request: AgentRequest) -> AgentResult:
        """No network at all: the answer says so and holds what would have been POSTed."""
        masker = masker_for(self.entry, request.env, [request.env.get(self.config.api_key_env, "")])
        payload = json.loads(self._payload(request.input))
        output = {
            "dry_run": True,
            "sent": False,
            "reason": f"{self.config.base_url_env} is not set",
            "path": self.config.webhook_path,
            "payload": payload,
        }
        return AgentResult(output=masker.mask(output), usage={"latency_ms": 0, "dry_run": True})

    def _base_url(self, env: Mapping[str, str]) -> str:
        name = self.config.base_url_env
        value = env.get(name, "").strip()
        if not value:
            raise AgentError(
                f"agent '{self.entry.slug}' needs {name} (the workflow server's base URL), "
                "which is not set",
                kind="config",
            )
        return value.rstrip("/")

    def _headers(self, request: AgentRequest, key: str) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Idempotency-Key": request.idempotency_key,
        }
        if key:
            headers[self.config.auth_header] = key
        return headers

    def _payload(self, value: Any) -> bytes:
        if self.config.payload_key:
            value = {self.config.payload_key: value}
        return json.dumps(value, default=str).encode()

    def _poll(
        self,
        client: httpx.Client,
        base_url: str,
        answer: Any,
        deadline: float,
        masker: Masker,
        request: AgentRequest,
    ) -> tuple[Any, dict[str, Any]]:
        execution_id = self._execution_id(answer)
        url = base_url + self.config.status_path.replace("{id}", quote(execution_id, safe=""))
        polls, last_error = 0, None
        while (remaining := deadline - time.monotonic()) > 0:
            polls += 1
            wait = self.config.poll_interval_seconds
            try:
                execution = call_json(client, "GET", url, masker=masker, timeout=remaining)
            except AgentError as exc:
                if not exc.retryable:
                    raise
                last_error, wait = exc, max(wait, exc.retry_after or 0.0)
            else:
                if self._finished(execution, execution_id, masker):
                    usage = {"execution_id": execution_id, "polls": polls}
                    return self._result(execution, execution_id), usage
            if request.cancellation.sleep(min(wait, deadline - time.monotonic())):
                break  # stopped: the step timed out or its run was aborted
        raise self._deadline_error(execution_id, polls, last_error)

    def _execution_id(self, answer: Any) -> str:
        value = dig(answer, self.config.execution_id_field)
        if value is None or isinstance(value, dict | list) or str(value) == "":
            raise AgentError(
                f"the workflow answered without '{self.config.execution_id_field}' "
                "(poll mode needs an execution id)",
                kind="bad_response",
            )
        return str(value)

    def _finished(self, execution: Any, execution_id: str, masker: Masker) -> bool:
        if not isinstance(execution, dict):
            raise AgentError(
                f"execution {execution_id}: status answer is not a JSON object",
                kind="bad_response",
            )
        status = str(execution.get("status") or "").lower()
        if status in _FAILED_STATUSES | _CANCELED_STATUSES:
            raise self._failed_error(execution, execution_id, status, masker)
        return execution.get("finished") is True or status == "success"

    def _failed_error(
        self, execution: dict[str, Any], execution_id: str, status: str, masker: Masker
    ) -> AgentError:
        reason = dig(execution, "data.resultData.error.message") or execution.get("error")
        detail = f": {masker.text(str(reason))[:EXCERPT_CHARS]}" if reason else ""
        retryable = self.config.retry_failed_executions and status in _FAILED_STATUSES
        message = f"workflow execution {execution_id} ended with status '{status}'{detail}"
        return AgentError(message, kind="server", retryable=retryable)

    def _result(self, execution: dict[str, Any], execution_id: str) -> Any:
        field = self.config.result_field
        if field is None:
            return execution
        value = dig(execution, field)
        if value is None:
            raise AgentError(
                f"execution {execution_id} finished without '{field}' "
                "(n8n: add ?includeData=true to status_path)",
                kind="bad_response",
            )
        return value

    def _deadline_error(
        self, execution_id: str, polls: int, last_error: AgentError | None
    ) -> AgentError:
        message = f"workflow execution {execution_id} not finished by the deadline ({polls} polls)"
        if last_error is not None:
            message += f"; last poll error: {last_error}"
        return AgentError(message, kind="timeout")
