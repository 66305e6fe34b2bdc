"""What the CLI is given (``-i``, ``--set``, ``--comment``) is held to the API's rules: JSON
read strictly, text valid, sizes bounded; refused before anything is stored."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.cli.approvals import decide_with
from baton.cli.run import parse_inputs
from orchestration_defs.language.inputs import InputError, resolve_inputs
from orchestration_defs.language.models import InputSpec
from tests.baton.api.edge_world import edge_world, stored
from tests.baton.api.world import World


@pytest.mark.parametrize(
    ("pair", "says"),
    [
        ("n=1e999999", "inputs.n: number 1e999999 is too large"),
        ("n=NaN", "inputs.n: NaN is not JSON"),
        ("n=" + "9" * 5000, "inputs.n: integer out of range"),
        ('t={"a": "\\ud800"}', "inputs.t.a: text must be valid Unicode"),
        ('t=["\\u0000"]', "inputs.t[0]: text may not contain NUL"),
        ("t=" + "[" * 100_000, "inputs.t: nested deeper than 64 levels"),
    ],
)
def test_json_values_are_read_strictly(pair: str, says: str) -> None:
    with pytest.raises(ValueError, match=says.replace("[", r"\[").replace(".", r"\.")):
        parse_inputs([pair])


def test_set_names_modifications_in_its_messages() -> None:
    with pytest.raises(ValueError, match=r"--set 'title': modifications\.title: NaN"):
        parse_inputs(["title=NaN"], what="--set", root="modifications")


def test_an_argument_that_is_not_utf8_is_refused_by_the_inputs_check() -> None:
    # Python hands undecodable argv bytes over as lone surrogates (surrogateescape).
    given = parse_inputs(["name=caf\udce9"])
    assert given == {"name": "caf\udce9"}
    with pytest.raises(InputError) as caught:
        resolve_inputs({"name": InputSpec(type="string")}, given)
    assert caught.value.fields == ["inputs.name"]
    assert "lone surrogate (U+DCE9)" in caught.value.problems[0]


@pytest.fixture
def w(tmp_path: Path, sqlite_db: str) -> Iterator[World]:
    yield from edge_world(tmp_path, sqlite_db)


@pytest.mark.parametrize(
    ("changes", "comment"),
    [([], "bad \udcff"), ([], "nul\x00"), (["greeting=" + "x" * 70_000], None), ([], "c" * 5001)],
    ids=["surrogate comment", "NUL comment", "long change", "long comment"],
)
def test_a_bad_decision_from_the_cli_exits_2_and_stores_nothing(
    w: World, changes: list[str], comment: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    _, approval = w.waiting_run()
    before = stored(w)
    args = argparse.Namespace(
        approval_id=uuid.UUID(approval),
        user="acme-approver",
        decision="continue",
        changes=changes,
        comment=comment,
        json=False,
    )
    assert decide_with(args, w.store, w.gateway) == 2
    assert "field: " in capsys.readouterr().err
    assert stored(w) == before
