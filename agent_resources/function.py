"""Function agents: Python code held in the catalog entry, run in a limited child process.

The entry's ``config.code`` defines ``run(input, ctx)``. It runs in the sandbox of
``agent_resources.sandbox`` (see docs/agents.md), whose rules the kernel enforces: its own
user, network and PID namespaces, Landlock (reads of Python's own files only, no writes), a
seccomp allow-list, rlimits, only the declared env vars. Its HTTP goes through ``ctx.http`` to
the worker, which calls only the hosts the entry allows. Bytes it keeps go through
``ctx.assets.save_bytes()`` and come back here, where the step stores them in the asset store.
"""

from __future__ import annotations

import base64
from typing import Any, ClassVar, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, create_model

from agent_resources.base import (
    Agent,
    AgentError,
    AgentRequest,
    AgentResult,
    DeliverableDraft,
    ErrorKind,
)
from agent_resources.catalog import AgentEntry
from agent_resources.http import masker_for
from agent_resources.sandbox.layers import SandboxPolicy
from agent_resources.sandbox.process import Limits, SandboxError, run_in_sandbox
from baton.secrets import Masker
from baton.settings import get_settings

_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
}


class InputField(BaseModel):
    """One input the function takes (checked by the validator and before each call)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["string", "integer", "number", "boolean", "array", "object"] = "string"
    required: bool = False
    default: Any = None
    description: str | None = None


class FunctionConfig(BaseModel):
    """The code and what it may reach."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="Python source defining `run(input, ctx)`.")
    entrypoint: str = Field("run", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    inputs: dict[str, InputField] = Field(
        default_factory=dict, description="The step's `with` keys; empty accepts any mapping."
    )
    imports: list[str] = Field(
        default_factory=list, description="Modules allowed beyond the default list."
    )
    allowed_hosts: list[str] = Field(default_factory=list, description="Hosts `ctx.http` may call.")
    url_env: dict[str, str] = Field(
        default_factory=dict,
        description="Env var -> default base URL; the host of each (set or default) is allowed.",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Given as `ctx.config`.")


class FunctionAgent(Agent):
    """Runs the entry's code in the sandbox and turns its answer into an ``AgentResult``."""

    config_model = FunctionConfig
    config: FunctionConfig
    # The Python-level guards (clear errors, not the boundary); only tests proving that the
    # kernel layers hold on their own turn them off.
    python_guards: ClassVar[bool] = True

    @classmethod
    def input_model_for(cls, entry: AgentEntry) -> type[BaseModel] | None:
        config = FunctionConfig.model_validate(entry.config)
        if not config.inputs:
            return None
        fields: dict[str, Any] = {
            name: (
                _TYPES[spec.type] | None if not spec.required else _TYPES[spec.type],
                Field(... if spec.required else spec.default, description=spec.description),
            )
            for name, spec in config.inputs.items()
        }
        model: type[BaseModel] = create_model(  # type: ignore[call-overload]
            f"{entry.slug}-input", __config__=ConfigDict(extra="forbid"), **fields
        )
        return model

    def run(self, request: AgentRequest) -> AgentResult:
        data = self.parse_input(request.input)
        value = data.model_dump() if isinstance(data, BaseModel) else data
        limits = self.entry.limits
        timeout = min(request.timeout_seconds or limits.timeout_seconds, limits.timeout_seconds)
        caps = Limits(timeout, limits.cpu_seconds, limits.memory_mb, limits.max_output_bytes)
        masker = masker_for(self.entry, request.env)
        try:
            answer = run_in_sandbox(
                self._payload(request, value),
                env=request.env,
                limits=caps,
                hosts=self._hosts(request.env),
                policy=_policy(),
                guards=self.python_guards,
                cancellation=request.cancellation,
            )
        except SandboxError as exc:
            message = masker.text(f"agent '{self.entry.slug}': {exc}")
            raise AgentError(message, kind=exc.kind) from None  # type: ignore[arg-type]
        if not answer.get("ok"):
            raise _error(self.entry.slug, answer.get("error") or {}, masker)
        return _result(answer, masker)

    def _payload(self, request: AgentRequest, value: Any) -> dict[str, Any]:
        return {
            "slug": self.entry.slug,
            "code": self.config.code,
            "entrypoint": self.config.entrypoint,
            "imports": self.config.imports,
            "env_names": [spec.name for spec in self.entry.env],
            "params": self.config.params,
            "input": value,
            "run_id": request.run_id,
            "step_id": request.step_id,
            "attempt": request.attempt,
            "idempotency_key": request.idempotency_key,
        }

    def _hosts(self, env: Any) -> set[str]:
        hosts = set(self.config.allowed_hosts)
        for name, default in self.config.url_env.items():
            host = urlsplit(env.get(name) or default).hostname
            if host:
                hosts.add(host)
        return hosts


def _policy() -> SandboxPolicy:
    settings = get_settings().sandbox
    try:
        return SandboxPolicy.of(settings.allow_weak, settings.unavailable.split(","))
    except ValueError as exc:
        raise AgentError(f"BATON_SANDBOX__UNAVAILABLE: {exc}", kind="config") from None


def _error(slug: str, error: dict[str, Any], masker: Masker) -> AgentError:
    kind = error.get("kind") or "client"
    known = get_args(ErrorKind)
    message = masker.text(f"agent '{slug}': {error.get('message') or 'failed'}")
    return AgentError(
        message,
        kind=kind if kind in known else "client",  # type: ignore[arg-type]
        retryable=error.get("retryable"),
        retry_after=error.get("retry_after"),
    )


def _result(answer: dict[str, Any], masker: Masker) -> AgentResult:
    assets = answer.get("assets") or []
    deliverables = []
    for item in answer.get("deliverables") or []:
        draft = DeliverableDraft(
            type=item["type"],
            name=item["name"],
            content=masker.mask(item.get("content")),
            metadata=masker.mask(item.get("metadata") or {}),
        )
        if item.get("asset") is not None:
            asset = assets[int(item["asset"])]
            draft.data = base64.b64decode(asset["data"])
            draft.mime_type = asset.get("mime_type")
            draft.metadata.setdefault("sha256", asset.get("sha256"))
        deliverables.append(draft)
    usage = dict(answer.get("usage") or {})
    usage["sandbox"] = dict(answer.get("sandbox") or {})
    usage["seccomp"] = bool(usage["sandbox"].get("seccomp"))
    if answer.get("log"):
        usage["log"] = masker.text(answer["log"])[-4000:]
    return AgentResult(
        output=masker.mask(answer.get("output")), usage=usage, deliverables=deliverables
    )
