"""`make demo`: the KPI flagship end to end on a throwaway deployment, with no keys and no network.

It starts `baton up` (Dagster webserver, daemon, API) on free ports with a temporary data
folder, creates a launcher and a finance approver with their API tokens through the CLI,
launches `finance-manager` for three quarters over the HTTP API, approves each child's finance
checkpoint over the HTTP API (the first with an edited summary), waits for the parent, prints
the summary across periods, what the publishing target received and the run tree (from the
API, with the Dagster status of each segment), and stops everything it started, also on
Ctrl-C or a failure. The publishing target is a small HTTP server of this script on 127.0.0.1
(BATON_PUBLISH_URL points the publisher agent at it).

    .venv/bin/python scripts/demo.py [--keep] [--periods 2025-01:2025-03,2025-04:2025-06]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LAUNCHER, APPROVER = "olga", "fiona"
DEFAULT_PERIODS = "2025-01:2025-03,2025-04:2025-06,2025-07:2025-09"
READY_SECONDS, RUN_SECONDS, STOP_SECONDS, SETTLE_SECONDS = 150.0, 150.0, 45.0, 30.0
DAGSTER_ENDED = {"SUCCESS", "FAILURE", "CANCELED"}
JOBS_QUERY = "{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } } }"


class DemoError(Exception):
    """The demo cannot go on; the message says why."""


def say(message: str = "") -> None:
    print(message, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# the publishing target ---------------------------------------------------------------------


class PublishTarget:
    """A local HTTP server standing in for the place summaries are published to."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        target = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:  # the demo prints what matters
                return

            def do_POST(self) -> None:  # the name http.server dispatches to
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/publish":
                    self._answer(404, {"error": f"no route {self.path}"})
                    return
                with target._lock:
                    target.posts.append(json.loads(body or b"{}"))
                    post_id = f"post-{len(target.posts)}"
                self._answer(201, {"id": post_id, "received": True})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler

    def __enter__(self) -> PublishTarget:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


# the deployment ------------------------------------------------------------------------------


class Deployment:
    """`baton up` in its own process group, on free ports, with a temporary data folder."""

    def __init__(self, data_dir: Path, publish_url: str) -> None:
        self.data_dir = data_dir
        self.ui_port, self.api_port = free_port(), free_port()
        self.ui_url = f"http://127.0.0.1:{self.ui_port}"
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.log_path = data_dir / "baton-up.log"
        self.env = self._environment(publish_url)
        self.proc: subprocess.Popen[bytes] | None = None

    def _environment(self, publish_url: str) -> dict[str, str]:
        # The caller's own Baton and Dagster settings must not point the demo at their data.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "DAGSTER_"))}
        env.update(
            BATON_DATA_DIR=str(self.data_dir),
            BATON_API__PORT=str(self.api_port),
            BATON_PUBLIC_URL=self.api_url,
            BATON_DAGSTER__UI_URL=self.ui_url,
            BATON_PUBLISH_URL=publish_url,
        )
        return env

    def baton(self, *args: str) -> str:
        """Run the `baton` CLI against this deployment's data; its stdout."""
        done = subprocess.run(
            [str(BIN / "baton"), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env,
            cwd=ROOT,
        )
        if done.returncode != 0:
            raise DemoError(f"baton {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def start(self) -> None:
        argv = [str(BIN / "baton"), "up", "--port", str(self.ui_port)]
        argv += ["--api-port", str(self.api_port)]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=ROOT,
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        """Until the API's database and Dagster answer and the UI lists finance-manager."""
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise DemoError(f"baton up exited ({self.proc.returncode}) before it was ready")
            if self._api_ready() and self._job_loaded("finance_manager"):
                return
            time.sleep(1)
        raise DemoError(f"the deployment was not ready after {READY_SECONDS:.0f} s")

    def _api_ready(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def _job_loaded(self, job: str) -> bool:
        try:
            answer = httpx.post(f"{self.ui_url}/graphql", json={"query": JOBS_QUERY}, timeout=10)
            nodes = answer.json()["data"]["repositoriesOrError"].get("nodes") or []
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return False
        return any(j["name"] == job for node in nodes for j in node["jobs"])

    def stop(self) -> None:
        """SIGINT, as Ctrl-C would: `baton up` stops its webserver, daemon and API; then kill.

        Processes of the deployment that outlive `baton up` (the warm launcher's zygote waits
        for its idle timeout) are asked to stop too, by pid, then killed.
        """
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._stop_leftovers()

    def _stop_leftovers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self.leftovers()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 10
            while pids and time.monotonic() < deadline:
                time.sleep(0.2)
                pids = self.leftovers()
            if not pids:
                return

    def leftovers(self) -> list[int]:
        """Live processes started for this deployment: its data folder in their env or argv."""
        proc_root = Path("/proc")
        if not proc_root.is_dir():  # not Linux: nothing to look at; `baton up` did its part
            return []
        mark = str(self.data_dir).encode()
        found = []
        for entry in proc_root.iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if _is_zombie(entry):
                    continue
                blob = (entry / "environ").read_bytes() + (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if mark in blob:
                found.append(int(entry.name))
        return found

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _is_zombie(entry: Path) -> bool:
    state = entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0]
    return state in ("Z", "X")


# the API ----------------------------------------------------------------------------------


class Api:
    """Baton's HTTP API with one user's bearer token."""

    def __init__(self, base_url: str, token: str) -> None:
        self._client = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._client.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise DemoError(f"{method} {path} answered {response.status_code}: {response.text}")
        return response.json()


def create_people(deployment: Deployment) -> tuple[str, str]:
    """A launcher (operator) and a finance approver, each with a token; shown once, kept here."""
    deployment.baton("users", "add", LAUNCHER)
    deployment.baton("users", "add", APPROVER, "--group", "finance")
    launcher = deployment.baton("tokens", "create", "--user", LAUNCHER, "--role", "operator")
    approver = deployment.baton("tokens", "create", "--user", APPROVER, "--role", "approver")
    return launcher.splitlines()[0].strip(), approver.splitlines()[0].strip()


# the flow ---------------------------------------------------------------------------------


def parse_periods(text: str) -> list[dict[str, str]]:
    periods = []
    for part in text.split(","):
        start, sep, end = part.strip().partition(":")
        if not sep or not start or not end:
            raise DemoError(f"--periods: expected START:END months (2025-01:2025-03), got {part!r}")
        periods.append({"start": start, "end": end})
    if len(periods) < 2:
        raise DemoError("--periods: give two or more periods")
    return periods


def edited_summary(show: dict[str, Any]) -> str:
    """What a finance reviewer might write instead of the extractive summary."""
    h = show["headline"]
    return (
        f"{h['period']}: revenue {h['revenue']:,.0f} against costs {h['costs']:,.0f}; "
        f"{h['new_customers']} customers won and {h['churned_customers']} lost; ending MRR "
        f"{h['ending_mrr']:,.0f}. Figures final, reviewed by finance."
    )


def approve_until_done(launcher: Api, approver: Api, root: str) -> dict[str, Any]:
    """Decide each child's checkpoint as it appears (the first with an edit) until the root ends."""
    decided: set[str] = set()
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        run = launcher.call("GET", f"/api/v1/runs/{root}")
        if run["status"] in ("completed", "failed", "aborted"):
            return dict(run)
        page = approver.call(
            "GET", "/api/v1/approvals", params={"status": "pending", "run_id": root}
        )
        for approval in page["items"]:
            if approval["approval_id"] not in decided:
                decide(approver, approval, edit=not decided)
                decided.add(approval["approval_id"])
        time.sleep(0.5)
    raise DemoError(f"finance-manager run {root} did not end within {RUN_SECONDS:.0f} s")


def decide(approver: Api, approval: dict[str, Any], *, edit: bool) -> None:
    show = approval["show"]
    body: dict[str, Any] = {"decision": "continue", "comment": "approved in the demo"}
    if edit:
        body["modifications"] = {"summary": edited_summary(show)}
    approver.call("POST", f"/api/v1/approvals/{approval['approval_id']}/decision", json=body)
    how = "with an edited summary" if edit else "as written"
    say(
        f"  {APPROVER} approved {show['period']} {how} "
        f"(approval {approval['approval_id'][:8]}, child run {approval['run_id'][:8]})"
    )


SUMMARY_LINES = 5


def report(run: dict[str, Any], target: PublishTarget, tree: list[str], took: float) -> None:
    outputs = run.get("outputs") or {}
    say(f"\nfinance-manager {run['run_id']}: {run['status']} ({took:.0f} s after launch)")
    say("\nSummary across the periods (finance-manager's overview step):")
    say_lines(str(outputs.get("overview", "")), "  ", limit=None)
    say("\nPer period, as approved and published:")
    for period, summary, edited in zip(
        outputs.get("periods", []),
        outputs.get("summaries", []),
        outputs.get("edited", []),
        strict=False,
    ):
        say(f"  {period}{' (edited by finance)' if edited else ''}:")
        say_lines(str(summary), "    ", limit=SUMMARY_LINES)
    say(f"\nThe publishing target ({target.url}/publish) received {len(target.posts)} post(s):")
    for post in target.posts:
        say(f"  {post.get('channel')} {post.get('period')} approved by {post.get('approved_by')}")
    say("\nRun tree (GET /api/v1/runs/{id}/tree, segments with their Dagster statuses):")
    for line in tree:
        say(f"  {line}")


def say_lines(text: str, indent: str, *, limit: int | None) -> None:
    """The summary's own lines, wrapped; past ``limit`` lines only how many more there are."""
    lines = text.splitlines() or [""]
    for line in lines[:limit]:
        say(textwrap.fill(line, 100, initial_indent=indent, subsequent_indent=indent + "  "))
    if limit is not None and len(lines) > limit:
        say(f"{indent}... ({len(lines) - limit} more lines, published in full)")


def settled_tree(launcher: Api, root: str) -> list[str]:
    """The tree's lines once every Dagster segment has ended (a segment whose finish op
    completed the run is still STARTED for a moment), or as they are after SETTLE_SECONDS."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        tree = launcher.call("GET", f"/api/v1/runs/{root}/tree")
        lines, statuses = tree_lines(tree)
        if set(statuses) <= DAGSTER_ENDED or time.monotonic() > deadline:
            return lines
        time.sleep(0.5)


def tree_lines(node: dict[str, Any], depth: int = 0) -> tuple[list[str], list[str]]:
    """One line per run (status, duration, place in its parent), then its Dagster segments
    with their statuses (all in the tree's answer); and the segments' statuses."""
    pad = "  " * depth
    place = f"  {node['parent_step']}[{node['index']}]" if node["parent_step"] else ""
    took = f"  {node['duration_seconds']:.1f} s" if node["duration_seconds"] is not None else ""
    lines = [f"{pad}{node['orchestration']} {node['run_id'][:8]}  {node['status']}{took}{place}"]
    statuses = [str(segment["status"]) for segment in node["segments"]]
    for segment in node["segments"]:
        lines.append(f"{pad}    segment {segment['dagster_run_id'][:8]}  {segment['status']}")
    for child in node["children"]:
        child_lines, child_statuses = tree_lines(child, depth + 1)
        lines += child_lines
        statuses += child_statuses
    return lines, statuses


def run_demo(deployment: Deployment, target: PublishTarget, periods: list[dict[str, str]]) -> int:
    launcher_token, approver_token = create_people(deployment)
    started = time.monotonic()
    deployment.start()
    say(f"Starting baton up: Dagster UI {deployment.ui_url}, API {deployment.api_url}")
    say(f"  data in {deployment.data_dir} (log: {deployment.log_path})")
    deployment.wait_ready()
    say(f"Ready after {time.monotonic() - started:.0f} s")
    launcher = Api(deployment.api_url, launcher_token)
    approver = Api(deployment.api_url, approver_token)
    body = {"orchestration": "finance-manager", "inputs": {"periods": periods}}
    launched = launcher.call("POST", "/api/v1/runs", json=body)
    root = launched["run_id"]
    span = ", ".join(f"{p['start']}..{p['end']}" for p in periods)
    say(f"Launched finance-manager {root} as {LAUNCHER} for {span}")
    say(f"Waiting for the kpi-tracking children's finance checkpoints ({APPROVER} decides):")
    launched_at = time.monotonic()
    run = approve_until_done(launcher, approver, root)
    took = time.monotonic() - launched_at
    report(run, target, settled_tree(launcher, root), took)
    if run["status"] != "completed":
        raise DemoError(f"finance-manager ended {run['status']}: {run.get('error')}")
    return 0


@contextmanager
def stop_on_term() -> Iterator[None]:
    """SIGTERM ends the demo like Ctrl-C, so the deployment is stopped on the way out."""

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    parser.add_argument("--periods", default=DEFAULT_PERIODS, help="START:END,START:END,...")
    args = parser.parse_args(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="baton-demo-"))
    code = 1
    with stop_on_term(), PublishTarget() as target:
        deployment = Deployment(data_dir, target.url)
        try:
            code = run_demo(deployment, target, parse_periods(args.periods))
        except DemoError as exc:
            say(f"\ndemo failed: {exc}")
            say(textwrap.indent(deployment.log_tail(), "  | "))
        except KeyboardInterrupt:
            say("\ninterrupted")
            code = 130
        finally:
            say("Stopping the deployment ...")
            deployment.stop()
            say("Stopped: webserver, daemon, API and code servers.")
            if args.keep:
                say(f"Data kept in {data_dir}")
            else:
                shutil.rmtree(data_dir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
