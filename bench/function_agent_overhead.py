"""What the function-agent sandbox costs per call, compared with calling the same code in-process.

Each sandboxed call starts a fresh `python -I` child, applies rlimits and the seccomp filter,
imports httpx, arms the audit hook, runs the code and answers over a pipe. This prints the
latency of a trivial function (p50/p95 over N calls) for both, their ratio, and the cost of the
offline image generator (a 256x256 placeholder PNG kept as an asset).

    .venv/bin/python bench/function_agent_overhead.py            # 30 calls each
    .venv/bin/python bench/function_agent_overhead.py --calls 100
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from agent_resources.base import AgentRequest
from agent_resources.catalog import AgentEntry, agent_catalog
from agent_resources.function import FunctionAgent

CODE = "def run(input, ctx):\n    return {'n': input['n'] + 1}\n"


def timed(call: Callable[[], Any], calls: int) -> list[float]:
    """Seconds per call, ``calls`` times."""
    laps = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        laps.append(time.perf_counter() - started)
    return laps


def describe(name: str, laps: list[float]) -> float:
    """Print p50/p95 in milliseconds; return p50."""
    ordered = sorted(laps)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(f"{name:<34} p50 {p50 * 1000:8.2f} ms   p95 {p95 * 1000:8.2f} ms")
    return p50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    entry = AgentEntry.model_validate(
        {"slug": "bench", "type": "function", "description": "bench", "config": {"code": CODE}}
    )
    agent = FunctionAgent(entry)
    request = AgentRequest(run_id="bench", step_id="s", attempt=1, input={"n": 1})
    namespace: dict[str, Any] = {}
    exec(CODE, namespace)  # the same code, no sandbox
    bare = describe("in-process call", timed(lambda: namespace["run"]({"n": 1}, None), args.calls))
    boxed = describe("sandboxed call", timed(lambda: agent.run(request), args.calls))
    print(f"{'sandbox overhead per call':<34} {(boxed - bare) * 1000:8.2f} ms")
    image = FunctionAgent(agent_catalog()["image-generator-openai"])
    draw = request.model_copy(update={"input": {"prompt": "a lighthouse"}})
    describe("image-generator-openai (offline)", timed(lambda: image.run(draw), args.calls))


if __name__ == "__main__":
    main()
