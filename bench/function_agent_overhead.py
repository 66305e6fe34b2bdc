"""What the function-agent sandbox costs per call, compared with calling the same code in-process.

Each sandboxed call starts a fresh `python -I` child, which enters its own user, network and PID
namespaces (a fork), drops its privileges, applies rlimits and Landlock, imports the allowed
modules, installs the seccomp allow-list, arms the Python guards, runs the code and answers over
a pipe. This prints the latency of a trivial function (p50/p95 over N calls) in-process and
sandboxed, the cost of the offline image generator (a 256x256 placeholder PNG kept as an asset)
and of one `ctx.http` call brokered by the worker to a local server.

    .venv/bin/python bench/function_agent_overhead.py            # 30 calls each
    .venv/bin/python bench/function_agent_overhead.py --calls 100
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agent_resources.base import AgentRequest
from agent_resources.catalog import AgentEntry, agent_catalog
from agent_resources.function import FunctionAgent

CODE = "def run(input, ctx):\n    return {'n': input['n'] + 1}\n"


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        return


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
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code = "def run(input, ctx):\n    return ctx.json(ctx.http.get(input['url']))\n"
        config = {"code": code, "allowed_hosts": ["127.0.0.1"]}
        fetch = FunctionAgent(
            AgentEntry.model_validate(
                {"slug": "bench-http", "type": "function", "description": "b", "config": config}
            )
        )
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        asks = request.model_copy(update={"input": {"url": url}})
        describe("sandboxed call + one ctx.http GET", timed(lambda: fetch.run(asks), args.calls))
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
