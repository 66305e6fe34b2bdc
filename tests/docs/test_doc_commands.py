"""Every command the docs show exists as shown: each ``baton`` command and option against the
CLI's own parsers, each ``make`` target against the Makefile, each script and its options
against its ``--help``, each ``curl`` route against docs/openapi.json, each repository path on
disk. Blocks marked to run are also run for real (tests/e2e/test_doc_commands_run.py)."""

from __future__ import annotations

import argparse
import functools
import json
import re
import shlex
import subprocess
import sys

import pytest

from baton.cli.main import build_parser
from tests.docs.shell_blocks import ROOT, Line, all_lines

PLACEHOLDER = re.compile(r"<[A-Za-z][^<>]*>")
SEPARATORS = {"|", "||", ";", "&&", "&", "(", ")", ">", ">>", "<", "$"}
# Programs a synopsis line may pipe into; anything else after `|` is an alternative subcommand.
PROGRAMS = {"head", "grep", "jq", "tail", "sort", "wc", "less", "cat", "tee", "xargs"}
REPO_PATH = re.compile(r"^(deploy|scripts|bench|orchestration_defs|docs|migrations)/")
LINES = all_lines()


def _tokens(command: str) -> list[str]:
    lexer = shlex.shlex(PLACEHOLDER.sub("PLACEHOLDER", command), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def _segments(tokens: list[str]) -> list[list[str]]:
    segments: list[list[str]] = [[]]
    for token in tokens:
        if token in SEPARATORS or (token.endswith("$") and token.rstrip("$") == ""):
            segments.append([])
        else:
            segments[-1].append(token.strip("[]"))
    return [s for s in segments if s and s != [""]]


def _children(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


@functools.cache
def _root() -> argparse.ArgumentParser:
    return build_parser()


def _check_baton(
    words: list[str], parser: argparse.ArgumentParser, where: str
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """Walk ``words`` down the subcommands from ``parser``; check each option on the leaf.
    Returns (the leaf's parent, the leaf)."""
    parent = parser
    index = 0
    while index < len(words) and words[index] in _children(parser):
        parent, parser = parser, _children(parser)[words[index]]
        index += 1
    assert parser is not _root() or not words, f"{where}: `baton {' '.join(words)}`: no command"
    if _children(parser) and index == len(words):
        return parent, parser  # a group shown on its own (`baton webhooks`)
    assert not _children(parser), f"{where}: `baton {' '.join(words)}`: a subcommand is missing"
    for word in words[index:]:
        if word.startswith("-") and word not in ("-", "--"):
            option = word.split("=", 1)[0]
            assert option in parser._option_string_actions, (
                f"{where}: `{parser.prog}` has no option {option} "
                f"(it has {sorted(parser._option_string_actions)})"
            )
    return parent, parser


@functools.cache
def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z0-9-]*):", text, re.M))


@functools.cache
def _script_help(script: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, f"{script} --help failed: {done.stderr[-500:]}"
    return done.stdout


@functools.cache
def _routes() -> list[tuple[str, re.Pattern[str]]]:
    spec = json.loads((ROOT / "docs" / "openapi.json").read_text())
    routes = []
    for path, methods in spec["paths"].items():
        pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")
        routes += [(method.upper(), pattern) for method in methods]
    return routes


def _check_curl(words: list[str], where: str) -> None:
    method = "GET"
    for index, word in enumerate(words):
        if word in ("-X", "--request") and index + 1 < len(words):
            method = words[index + 1].upper()
        elif word in ("-d", "--data", "--data-binary") and method == "GET":
            method = "POST"
    urls = [w for w in words if "/api/" in w or w.endswith("/metrics") or "/webhooks/" in w]
    assert urls, f"{where}: a curl line with no Baton URL"
    path = re.sub(r"^(\$API|https?://[^/]+)", "", urls[0]).split("?")[0]
    if path == "/metrics":
        return
    known = [m for m, pattern in _routes() if pattern.match(path)]
    assert method in known, f"{where}: {method} {path} is not a route of docs/openapi.json"


def _check_line(line: Line) -> None:
    where = line.where()
    previous: tuple[argparse.ArgumentParser, argparse.ArgumentParser] | None = None
    for words in _segments(_tokens(line.command)):
        while words and "=" in words[0] and not words[0].startswith("-"):
            words = words[1:]  # VAR=value before a command; `export X=...`
        if not words or words[0] in ("export", "sudo", "cd"):
            continue
        program, rest = words[0], words[1:]
        if program.endswith("/baton") or program == "baton":
            previous = _check_baton(rest, _root(), where)
        elif program == "make":
            for target in (w for w in rest if not w.startswith("-") and "=" not in w):
                assert target in _make_targets(), f"{where}: no make target '{target}'"
        elif program.endswith("python") or program.endswith("python3"):
            script = rest[0]
            assert (ROOT / script).is_file(), f"{where}: {script} does not exist"
            text = _script_help(script)
            for option in (w.split("=")[0] for w in rest[1:] if w.startswith("--")):
                assert option in text, f"{where}: {script} has no option {option}"
        elif program == "curl":
            _check_curl(rest, where)
        elif previous is not None and program in _children(previous[0]):
            previous = _check_baton(words, previous[0], where)  # `| retry RUN_ID STEP`
        for word in words:
            if REPO_PATH.match(word) and "PLACEHOLDER" not in word:
                matches = list(ROOT.glob(word.rstrip("/")))
                assert matches, f"{where}: {word} is not in the repository"


@pytest.mark.parametrize("line", LINES, ids=[line.where() for line in LINES])
def test_the_command_exists_as_the_docs_show_it(line: Line) -> None:
    _check_line(line)


def test_the_docs_show_commands() -> None:
    assert len(LINES) > 80  # the parser found the blocks
    assert any(line.command.startswith("baton run ") for line in LINES)


def test_a_wrong_option_or_command_is_caught() -> None:
    with pytest.raises(AssertionError, match="has no option --nope"):
        _check_line(Line("x.md", 1, "baton runs list --nope", ""))
    with pytest.raises(AssertionError, match="no make target 'nope'"):
        _check_line(Line("x.md", 1, "make nope", ""))
    with pytest.raises(AssertionError, match="not a route"):
        _check_line(Line("x.md", 1, 'curl -s -X DELETE "$API/api/v1/runs"', ""))
    with pytest.raises(AssertionError, match="has no option --nope"):
        _check_line(Line("x.md", 1, "baton library sync | problems --nope", ""))
    with pytest.raises(AssertionError, match="not in the repository"):
        _check_line(Line("x.md", 1, "cp deploy/nope.yaml /tmp", ""))


def test_placeholders_and_optional_parts_are_understood() -> None:
    assert _segments(_tokens("baton runs show <run id> [--json]")) == [
        ["baton", "runs", "show", "PLACEHOLDER", "--json"]
    ]
