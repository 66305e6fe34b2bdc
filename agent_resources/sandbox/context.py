"""The ``ctx`` a function agent's ``run(input, ctx)`` receives, inside the sandbox child.

Standard library only: this module is loaded in the child before the agent's code runs.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

from agent_resources.sandbox.child_http import Http
from agent_resources.sandbox.errors import AgentFailure, OutputTooLarge, SandboxViolation


class Budget:
    """Counts the bytes the agent hands back, against ``max_output_bytes``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def spend(self, size: int, what: str) -> None:
        self.used += size
        if self.used > self.limit:
            raise OutputTooLarge(f"exceeded by {what} ({self.used} bytes in all)")


class Env(Mapping[str, str]):
    """The declared variables that are set; asking for anything else names the rule."""

    def __init__(self, values: Mapping[str, str], declared: list[str], slug: str) -> None:
        self._values = dict(values)
        self._declared = declared
        self._slug = slug

    def __getitem__(self, name: str) -> str:
        if name not in self._declared:
            raise SandboxViolation(
                f"env var '{name}' is not declared by agent '{self._slug}' "
                f"(declared: {', '.join(self._declared) or 'none'})"
            )
        return self._values[name]

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        try:
            return self[name]
        except KeyError:
            return default

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class Assets:
    """``ctx.assets``: bytes kept in Baton's asset store by the parent, never written here."""

    def __init__(self, budget: Budget) -> None:
        self.saved: list[dict[str, Any]] = []
        self._budget = budget

    def save_bytes(
        self, name: str, data: bytes, *, mime_type: str = "application/octet-stream"
    ) -> dict[str, Any]:
        """Keep ``data`` as an asset; returns a reference to pass to ``deliverables.create``."""
        if not isinstance(data, bytes | bytearray):
            raise TypeError("save_bytes takes bytes")
        self._budget.spend(len(data), f"asset '{name}'")
        ref = {"asset": len(self.saved), "name": str(name), "size_bytes": len(data)}
        ref["sha256"] = hashlib.sha256(data).hexdigest()
        self.saved.append({**ref, "mime_type": mime_type, "data": bytes(data)})
        return ref


class Deliverables:
    """``ctx.deliverables``: things this step produced for people."""

    def __init__(self, assets: Assets, budget: Budget) -> None:
        self.created: list[dict[str, Any]] = []
        self._assets = assets
        self._budget = budget

    def create(
        self,
        type: str,
        *,
        name: str = "result",
        content: Any = None,
        asset: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a deliverable: ``content`` (JSON-able) and/or an ``asset`` from save_bytes."""
        item = {"type": str(type), "name": str(name), "content": content}
        item["metadata"] = dict(metadata or {})
        if asset is not None:
            index = int(asset["asset"])
            if not 0 <= index < len(self._assets.saved):
                raise ValueError("asset must be a reference returned by ctx.assets.save_bytes")
            item["asset"] = index
        self._budget.spend(len(json.dumps(item, default=str)), f"deliverable '{name}'")
        self.created.append(item)


class Context:
    """The ``ctx`` the agent's ``run(input, ctx)`` receives."""

    Failure = AgentFailure

    def __init__(self, request: Mapping[str, Any], env: Env, budget: Budget, http: Http) -> None:
        self.run_id: str = request["run_id"]
        self.step_id: str = request["step_id"]
        self.attempt: int = request["attempt"]
        # The parent computes the key: it alone knows the logical call's number.
        self.idempotency_key: str = request.get("idempotency_key") or (
            f"{self.run_id}:{self.step_id}:{self.attempt}"
        )
        self.env = env
        self.config: dict[str, Any] = dict(request.get("params") or {})
        # For the code's own HTTP timeouts: short of the wall clock, so a slow server is a
        # (retryable) timeout rather than a killed process.
        self.timeout_seconds: float = float(request["limits"]["timeout_seconds"]) * 0.8
        self.http = http
        self.assets = Assets(budget)
        self.deliverables = Deliverables(self.assets, budget)
        self.usage: dict[str, Any] = {}

    def placeholder_png(self, text: str, size: int = 256) -> bytes:
        """A deterministic gradient PNG coloured by ``text``: the offline stand-in for images."""
        return placeholder_png(text, size)

    def log(self, message: str) -> None:
        """A line in the step's log."""
        sys.stderr.write(f"{message}\n")

    def fail(
        self,
        message: str,
        *,
        retryable: bool = False,
        kind: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Fail the step; ``retryable`` lets its retry policy try again."""
        raise AgentFailure(
            message,
            kind=kind or ("server" if retryable else "client"),
            retryable=retryable,
            retry_after=retry_after,
        )

    def check(self, response: Any) -> Any:
        """Fail like Baton's HTTP agents on a non-2xx answer (429/5xx retryable, 4xx not)."""
        code = int(response.status_code)
        if code < 400:
            return response
        what = f"{response.request.method} {response.request.url} answered {code}"
        after = _retry_after(response.headers.get("retry-after"))
        excerpt = " ".join(response.text.split())[:200]
        if code == 429:
            raise AgentFailure(f"{what} (rate limited)", kind="rate_limited", retry_after=after)
        if code >= 500 or code == 408:
            kind = "server" if code >= 500 else "timeout"
            raise AgentFailure(f"{what}: {excerpt}", kind=kind, retry_after=after)
        raise AgentFailure(f"{what}: {excerpt}", kind="client")

    def json(self, response: Any) -> Any:
        """The JSON body of a checked response; a malformed body is a ``bad_response``."""
        self.check(response)
        try:
            return response.json()
        except ValueError as exc:
            what = f"{response.request.method} {response.request.url}"
            raise AgentFailure(
                f"{what} answered malformed JSON: {exc}", kind="bad_response"
            ) from exc


def placeholder_png(text: str, size: int = 256) -> bytes:
    """A ``size`` x ``size`` RGB PNG whose colours come from a hash of ``text``."""
    size = max(8, min(int(size), 1024))
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    (r0, g0, b0), (r1, g1, b1) = digest[0:3], digest[3:6]
    rows = bytearray()
    for y in range(size):
        rows.append(0)  # filter: none
        for x in range(size):
            t = (x + y) / (2 * size - 2)
            rows += bytes(round(a + (b - a) * t) for a, b in ((r0, r1), (g0, g1), (b0, b1)))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 6))
        + chunk(b"IEND", b"")
    )


def _retry_after(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None
