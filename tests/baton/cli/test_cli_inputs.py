"""What the CLI is given (``-i``, ``--set``, ``--comment``) is held to the API's rules: JSON
read strictly, text valid, sizes bounded; refused before anything is stored."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.approvals import Approvals
from baton.cli.approvals import decide_with
from baton.cli.main import main
from baton.cli.run import parse_inputs, parse_text_inputs
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


def test_s_keeps_the_value_as_text_where_i_reads_json() -> None:
    assert parse_inputs(["customer=123", 'quoted="123"', "flag=true"]) == {
        "customer": 123,
        "quoted": "123",
        "flag": True,
    }
    assert parse_text_inputs(["customer=123", "flag=true", "e=", "f=a=b"]) == {
        "customer": "123",
        "flag": "true",
        "e": "",
        "f": "a=b",
    }
    with pytest.raises(ValueError, match="-s 'novalue' is not KEY=VALUE"):
        parse_text_inputs(["novalue"])


def test_a_number_for_a_text_input_says_how_to_give_the_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "hello", "-i", "name=123"]) == 1
    err = capsys.readouterr().err
    assert "input 'name' must be of type string" in err
    assert "-i reads 123 as JSON; for the text, -s name=123 or -i 'name=\"123\"'" in err
    # Nothing was stored: the refusal comes before the database is touched.
    from baton.settings import get_settings

    assert not (get_settings().data_dir / "baton.db").exists()


def test_a_key_given_by_both_i_and_s_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "hello", "-i", "name=Ada", "-s", "name=Bo"]) == 2
    assert "input 'name' is given by both -i and -s" in capsys.readouterr().err


def test_the_help_of_i_says_it_reads_json_and_shows_the_quoting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "VALUE is read as JSON when it is valid JSON" in text
    assert "-i 'customer=\"123\"'" in text
    assert "-s customer=123" in text


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


def test_a_number_for_a_text_field_of_set_says_how_to_give_the_text(
    w: World, capsys: pytest.CaptureFixture[str]
) -> None:
    _, approval = w.waiting_run()
    args = argparse.Namespace(
        approval_id=uuid.UUID(approval),
        user="acme-approver",
        decision="continue",
        changes=["greeting=2026"],
        comment=None,
        json=False,
    )
    assert decide_with(args, w.store, w.gateway) == 1
    err = capsys.readouterr().err
    assert "field 'greeting' must be of type string, got int" in err
    assert "--set reads 2026 as JSON; for the text, --set 'greeting=\"2026\"'" in err

    args.changes = ['greeting="2026"']  # as the hint says
    assert decide_with(args, w.store, w.gateway) == 0
    assert Approvals(w.store).get(uuid.UUID(approval)).modifications == {"greeting": "2026"}
