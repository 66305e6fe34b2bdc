"""The sandbox's kernel layers by name, which of them must hold, and the refusal when one cannot.

Standard library only: the child reports with these names and the parent decides with them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Each is tried by the child; ``usage.sandbox`` on every step says which held.
USER_NS = "user_ns"  # its own user namespace: no capability over anything outside it
NET_NS = "net_ns"  # its own network namespace: no interface but a down loopback
PID_NS = "pid_ns"  # its own PID namespace: no other process is visible or addressable
LANDLOCK = "landlock"  # file reads limited to Python's own files, no writes, no TCP
SECCOMP = "seccomp"  # a system call allow-list, installed last
LAYERS = (USER_NS, NET_NS, PID_NS, LANDLOCK, SECCOMP)
# Without these the boundary is the interpreter, which the agent's code shares.
REQUIRED = frozenset({USER_NS, NET_NS, LANDLOCK, SECCOMP})
ALLOW_WEAK_SETTING = "BATON_SANDBOX__ALLOW_WEAK"


@dataclass(frozen=True)
class SandboxPolicy:
    """What the operator allows: run with missing layers, and layers to treat as missing."""

    allow_weak: bool = False
    unavailable: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, allow_weak: bool, unavailable: Iterable[str]) -> SandboxPolicy:
        """A policy from settings; unknown layer names are refused by name."""
        names = frozenset(n.strip() for n in unavailable if n.strip())
        unknown = sorted(names - set(LAYERS))
        if unknown:
            raise ValueError(
                f"unknown sandbox layer(s) {', '.join(unknown)} (known: {', '.join(LAYERS)})"
            )
        return cls(allow_weak, names)

    def as_dict(self) -> dict[str, Any]:
        return {"allow_weak": self.allow_weak, "unavailable": sorted(self.unavailable)}


def missing(held: Mapping[str, Any]) -> list[str]:
    """The required layers that did not hold."""
    return sorted(name for name in REQUIRED if not held.get(name))


def refusal(absent: list[str]) -> str:
    """Why a function agent does not run on this system, and the way to run it anyway."""
    return (
        f"this system cannot enforce the sandbox layer(s) {', '.join(absent)}, so function "
        f"agents are refused here; set {ALLOW_WEAK_SETTING}=true to run them with the layers "
        "that hold (docs/agents.md says what holds then)"
    )
