"""Webhook accepted -> run started, p50/p95, on a running deployment (issue 12's target 1.5 s).

``baton up`` in a temp data folder on free ports (SQLite, the shipped ``dagster.yaml``: warm
run launcher, queued run coordinator), a library of one orchestration triggered by the source
``github`` (org ``acme``, one ``echo`` step), a source registered with ``baton webhooks
add-source``. Each of N deliveries (default 20) is a JSON body signed as Standard Webhooks
(``baton.webhooks.signing.headers``) and posted with httpx to ``POST /webhooks/github``; the
time is from just before the POST to the ``step.started`` event of the run's first step (the
accepting process starts the run, the webhook sensor is the safety net). One delivery at a
time, the next after the run ended.

Bare twin: a one-op bare Dagster job on the same instance and run launcher, created and
launched in this process (``create_run`` + ``launch_run``) -> the op's code starting
(``bench/resume_latency.py``'s floor). GraphQL ``launchRun`` would need the bare job in the
deployment's own workspace, which the shipped deployment does not serve.

    .venv/bin/python bench/webhook_latency.py [--deliveries 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import figure, machine_line, percentile, write_json  # noqa: E402
from resume_latency import (  # noqa: E402  (the deployment helpers of that bench)
    Deployment,
    _events,
    _step_started,
    _store,
    _wait,
    deployment,
    floor_series,
)

TARGET_P50 = 1.5
TRIGGERED = """
slug: pr-review
name: PR review
version: 1
organization: acme
inputs:
  title: {type: string, required: true}
triggers:
  - webhook:
      source: github
      filter: "{{ body.action == 'opened' }}"
      inputs:
        title: "{{ body.pr.title }}"
steps:
  - id: review
    agent: echo
    with: {title: "{{ inputs.title }}"}
outputs:
  title: "{{ steps.review.output.title }}"
"""


def _secret(dep: Deployment) -> str:
    out = dep._cli("webhooks", "add-source", "github", "--org", "acme")
    for word in out.split():
        if word.startswith("whsec_"):
            return word.strip(".,;")
    raise RuntimeError("baton webhooks add-source printed no whsec_ secret")


def _deliver(dep: Deployment, secret: str, store: Any, index: int) -> dict[str, float | None]:
    from baton.store.runs import RunsRepository
    from baton.webhooks.signing import headers
    from sensors.webhooks import webhook_run_id

    webhook_id = f"msg_bench_{index}_{uuid.uuid4().hex[:8]}"
    body = json.dumps({"action": "opened", "pr": {"title": f"bench {index}"}}).encode()
    sent = headers(secret, webhook_id, body)
    sent["content-type"] = "application/json"
    began = time.time()
    answer = httpx.post(f"{dep.api}/webhooks/github", content=body, headers=sent, timeout=60)
    answered = time.time()
    if answer.status_code != 202:
        raise RuntimeError(f"webhook answered {answer.status_code}: {answer.text[:300]}")
    run_id = webhook_run_id("github", webhook_id, "pr-review")
    try:
        started = _wait(
            "the first step", lambda: _step_started(store, run_id, "review", began), 120, 0.02
        )
    except TimeoutError:
        return {"started": None, "answered": answered - began}

    def ended() -> bool:
        with store.session() as s:
            run = RunsRepository(s).get(run_id)
            return run is not None and run.status in ("completed", "failed")

    _wait("the run to end", ended, 180, 0.1)
    # Who launched it: the accepting process (the fast path) or the webhook sensor.
    by = [
        str(e.payload.get("by"))
        for e in _events(store, run_id)
        if e.type == "segment.launched" and "by" in e.payload
    ]
    return {"started": started - began, "answered": answered - began, "by": by[0] if by else "?"}


def measure(base: Path, deliveries: int) -> dict[str, Any]:
    library = base / "library"
    library.mkdir(parents=True)
    (library / "pr-review.yaml").write_text(TRIGGERED)
    with deployment(base, "deployment", library) as dep:
        secret = _secret(dep)
        store = _store()
        _deliver(dep, secret, store, -1)  # warm-up: the API's code server and the zygote
        time.sleep(2)
        samples = []
        for index in range(deliveries):
            samples.append(_deliver(dep, secret, store, index))
            time.sleep(0.5)
        floor = floor_series(dep, deliveries)
    return {"samples": samples, "floor": floor}


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), percentile(values, 95)


def report(results: dict[str, Any], deliveries: int) -> list[dict[str, Any]]:
    started = [s["started"] for s in results["samples"] if s["started"] is not None]
    answered = [s["answered"] for s in results["samples"]]
    lost = len(results["samples"]) - len(started)
    floor = results["floor"]["whole launch"]
    if not started:
        raise RuntimeError(f"no run of {deliveries} webhooks reached its first step")
    p50, p95 = _stats(started)
    floor50, floor95 = _stats(floor)
    a50, a95 = _stats(answered)
    note_lost = f"; {lost} of {deliveries} did not start in 120 s" if lost else ""
    launchers: dict[str, int] = {}
    for sample in results["samples"]:
        launchers[str(sample.get("by"))] = launchers.get(str(sample.get("by")), 0) + 1
    by = ", ".join(f"{n} by {who}" for who, n in sorted(launchers.items()))
    note_lost += f"; launched: {by}"
    figures = [
        figure(
            "webhook -> first step started, p50", p50, "s", bare=floor50, store="sqlite",
            target=f"<= {TARGET_P50} s",
            note=f"{len(started)} deliveries{note_lost}; bare: one-op job, create_run + "
            "launch_run on the same instance -> op running",
        ),
        figure("webhook -> first step started, p95", p95, "s", bare=floor95, store="sqlite"),
        figure("webhook POST -> 202 answered, p50", a50, "s", note="the inbox row is stored first"),
        figure("webhook POST -> 202 answered, p95", a95, "s"),
    ]  # fmt: skip
    print(f"machine: {machine_line()}")
    print(f"{deliveries} signed webhooks, one at a time, baton up on SQLite\n")
    print("| measure | n | p50 s | p95 s | target |\n|---|---|---|---|---|")
    print(f"| webhook -> step.started | {len(started)} | {p50:.3f} | {p95:.3f} "
          f"| p50 <= {TARGET_P50} s: {'yes' if p50 <= TARGET_P50 else 'NO'} |")  # fmt: skip
    print(f"| webhook -> 202 | {len(answered)} | {a50:.3f} | {a95:.3f} | - |")
    print(f"| bare job launch -> op | {len(floor)} | {floor50:.3f} | {floor95:.3f} | - |")
    print(f"\nruns launched: {by}")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temp data folder")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="baton-webhook-bench-"))
    try:
        results = measure(base, args.deliveries)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    figures = report(results, args.deliveries)
    if args.json:
        write_json(args.json, "webhook_latency", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
