"""The shell commands the docs show: fenced ``sh``/``bash``/``console`` blocks of README.md and
docs/*.md, one :class:`Line` per command (backslash continuations joined, comments split off).

A block right after ``<!-- docs-test: run -->`` is run for real by
``tests/e2e/test_doc_commands_run.py``; every other block is a synopsis whose commands,
options and routes are checked against the CLI's parsers, the Makefile, the bench scripts and
the OpenAPI document (``tests/docs/test_doc_commands.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(sh|bash|shell|console)\s*$")
RUN_MARK = "<!-- docs-test: run -->"


@dataclass(frozen=True)
class Line:
    """One command of a block: its text without the comment, the comment, where it stands."""

    file: str
    number: int
    command: str
    comment: str
    # Comment lines right below it (sample output, like `#  status: awaiting_approval`).
    output: tuple[str, ...] = ()

    def where(self) -> str:
        return f"{self.file}:{self.number}"


@dataclass(frozen=True)
class Block:
    file: str
    number: int
    run: bool
    lines: tuple[Line, ...]


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """The shell blocks of ``path``."""
    found: list[Block] = []
    text = path.read_text().splitlines()
    name = str(path.relative_to(ROOT))
    index = 0
    while index < len(text):
        if not FENCE.match(text[index]):
            index += 1
            continue
        start = index
        marked = _previous_text(text, start) == RUN_MARK
        body: list[tuple[int, str]] = []
        index += 1
        while index < len(text) and not text[index].startswith("```"):
            body.append((index + 1, text[index]))
            index += 1
        found.append(Block(name, start + 1, marked, tuple(_lines(name, body))))
        index += 1
    return found


def _previous_text(text: list[str], index: int) -> str:
    index -= 1
    while index >= 0 and not text[index].strip():
        index -= 1
    return text[index].strip() if index >= 0 else ""


def _lines(name: str, body: list[tuple[int, str]]) -> list[Line]:
    lines: list[Line] = []
    pending: tuple[int, str] | None = None
    for number, raw in body:
        if pending is not None:
            number, raw = pending[0], pending[1] + " " + raw.strip()
            pending = None
        if raw.rstrip().endswith("\\"):
            pending = (number, raw.rstrip()[:-1].rstrip())
            continue
        if _open_quote(raw):  # a quoted string going on to the next line
            pending = (number, raw.rstrip())
            continue
        stripped = raw.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if lines:
                last = lines[-1]
                lines[-1] = Line(
                    last.file, last.number, last.command, last.comment, (*last.output, stripped)
                )
            continue
        command, comment = split_comment(stripped)
        lines.append(Line(name, number, command, comment))
    return lines


def _open_quote(line: str) -> bool:
    quote: str | None = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return False
    return quote is not None


def split_comment(line: str) -> tuple[str, str]:
    """``line`` cut at its first ``#`` outside quotes that starts a word."""
    quote: str | None = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip(), line[index + 1 :].strip()
    return line, ""


def all_lines() -> list[Line]:
    return [line for path in doc_files() for block in blocks(path) for line in block.lines]
