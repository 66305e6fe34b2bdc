"""The docs' blocks marked ``<!-- docs-test: run -->`` run, line by line, against a real
deployment (`baton up` on free ports, a temp data folder): each command must succeed, and what
the docs say it prints must be there.

What the docs say a command prints: a trailing ``# -> TEXT`` (TEXT in the output; with
"later" in the comment the command is repeated for up to a minute until it is), and comment
lines right below it: ``#  status: awaiting_approval`` (each ``...``-separated part in the
output). ``<approval id>``, ``<run id>``, ``APPROVAL_ID``, ``RUN_ID``, ``ROOT_ID`` and ``6f0c...``
stand for the ids the earlier commands printed. ``127.0.0.1:8080`` and ``:3000`` are the
deployment's ports.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from baton.settings import get_settings
from tests.docs.shell_blocks import Line, blocks, doc_files

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
CAPTURES = {
    "approval": re.compile(rf"approvals?\W{{1,30}}({UUID})", re.I),
    "run": re.compile(rf"(?:\brun_id|\brun|\bRUN)\W{{1,30}}({UUID})"),
}
PLACEHOLDERS = {
    "<approval id>": "approval",
    "APPROVAL_ID": "approval",
    "6f0c...": "approval",
    "<run id>": "run",
    "RUN_ID": "run",
    "ROOT_ID": "run",
}
RUN_BLOCKS = [b for path in doc_files() for b in blocks(path) if b.run]
RUN_FILES = sorted({b.file for b in RUN_BLOCKS})


class Shell:
    """Runs doc lines in bash with the deployment's environment; remembers the ids seen."""

    def __init__(self, api: str, ui: str) -> None:
        bin_dir = str(Path(sys.executable).parent)
        self.env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        self.api, self.ui = api, ui
        self.seen: dict[str, str] = {}

    def command(self, line: Line) -> str:
        text = line.command.replace("127.0.0.1:8080", self.api).replace(":3000", f":{self.ui}")
        for placeholder, kind in PLACEHOLDERS.items():
            if placeholder in text:
                assert kind in self.seen, f"{line.where()}: no {kind} id printed before it"
                text = text.replace(placeholder, self.seen[kind])
        return text

    def run(self, line: Line) -> str:
        text = self.command(line)
        export = re.match(r"export (\w+)=(.*)$", text)
        script = f"printf %s {export.group(2)}" if export else text
        done = subprocess.run(
            ["bash", "-c", script], env=self.env, capture_output=True, text=True, timeout=300
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{line.where()}: `{text}` exited {done.returncode}: {output}"
        if export:
            self.env[export.group(1)] = done.stdout
        for kind, pattern in CAPTURES.items():
            found = pattern.findall(output)
            if found and (kind == "approval" or kind not in self.seen):
                # The newest approval; the first run (later ones are its Dagster runs).
                self.seen[kind] = found[-1] if kind == "approval" else found[0]
        return output


def _expected(line: Line) -> list[str]:
    parts = []
    if "->" in line.comment:
        parts.append(line.comment.split("->", 1)[1].split("(")[0].strip())
    for sample in line.output:
        text = sample.lstrip("#").strip()
        for part in text.split("..."):
            part = re.sub(r"\s*\b[0-9a-f]{3,}$", "", part).strip(" ;:,")  # an id cut short
            if len(part) >= 6:
                parts.append(part)
    return [p for p in parts if p]


def _run_line(shell: Shell, line: Line) -> None:
    expected = _expected(line)
    deadline = time.monotonic() + (60 if "later" in line.comment else 0)
    while True:
        output = shell.run(line)
        missing = [p for p in expected if p not in output]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not missing, f"{line.where()}: the docs say it prints {missing}; it printed:\n{output}"


def test_the_docs_mark_blocks_to_run() -> None:
    files = {b.file for b in RUN_BLOCKS}
    assert {"README.md", "docs/api.md"} <= files, files


@pytest.mark.parametrize("doc", RUN_FILES)
def test_the_marked_blocks_of_a_doc_run_as_it_says(doc: str, deployment: str) -> None:
    # One shell per doc: a later block uses what an earlier one exported ($TOKEN).
    api = f"127.0.0.1:{get_settings().api.port}"
    shell = Shell(api, deployment.rsplit(":", 1)[1])
    for block in (b for b in RUN_BLOCKS if b.file == doc):
        for line in block.lines:
            _run_line(shell, line)
