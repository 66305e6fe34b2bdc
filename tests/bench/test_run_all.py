"""bench/run_all.py: canned bench scripts and JSON files merged into one table and one JSON; a
failing bench shows its stderr and makes the exit 1 without stopping the others; a missing
script is listed, not a crash. Correctness only: no figure is timed here."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _module() -> ModuleType:
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "bench" / "run_all.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_all"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


run_all = _module()
from common import figure, write_json  # noqa: E402  (bench/common.py, on the path above)

GOOD = """
import argparse, sys
sys.path.insert(0, {bench!r})
from common import figure, write_json
p = argparse.ArgumentParser()
p.add_argument("--json")
p.add_argument("--size", default="big")
a = p.parse_args()
print("own table, size", a.size)
write_json(a.json, "good", [
    figure("step", 1.2, "s", bare=1.0, store="sqlite", target="<= 1.3"),
    figure("latency p50", 2.0, "s", target="<= 1.5 s", note="no twin"),
])
"""
BAD = """
import sys
sys.stderr.write("Traceback: the server at 5432 refused\\n")
sys.exit(3)
"""


def test_figures_carry_the_contract_and_targets_are_read() -> None:
    item = figure("step", 1.2, "s", bare=1.0, target="<= 1.3")
    assert item["ratio"] == pytest.approx(1.2)
    assert set(item) == {"name", "store", "baton", "bare", "ratio", "unit", "target", "note"}
    assert run_all.met(item) == "yes"
    assert run_all.met(figure("p50", 2.0, "s", target="<= 1.5 s")) == "NO"
    assert run_all.met(figure("n", 2.0, "s")) == "-"
    with pytest.raises(ValueError, match="unit 'sec'"):
        figure("x", 1.0, "sec")


def test_canned_json_files_merge_into_one_table(tmp_path: Path) -> None:
    write_json(tmp_path / "a.json", "a", [figure("load", 3.0, "s", bare=2.0, target="<= 2")])
    (tmp_path / "old.json").write_text(json.dumps({"results": [{"ratio": 1.1}]}))
    outcomes = [
        run_all.read_result("a", tmp_path / "a.json"),
        run_all.read_result("old", tmp_path / "old.json"),
        run_all.read_result("gone", tmp_path / "gone.json"),
    ]
    assert [o.status for o in outcomes] == ["ok", "failed", "failed"]
    assert "contract" in (outcomes[1].error or "")
    table = run_all.render(outcomes).splitlines()
    assert table[0] == "| bench | figure | store | Baton | bare | ratio | target | met |"
    assert table[2] == "| a | load | - | 3.000 s | 2.000 s | 1.50 | <= 2 | yes |"
    assert table[3].startswith("| old | FAILED |")
    merged = run_all.merged(outcomes, {})
    assert [b["status"] for b in merged["benches"]] == ["ok", "failed", "failed"]
    assert merged["benches"][0]["figures"][0]["bare"] == 2.0
    assert merged["machine"]["cpus"] >= 1


def test_suite_runs_every_bench_reports_failures_and_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "good.py").write_text(GOOD.format(bench=str(ROOT / "bench")))
    (scripts / "bad.py").write_text(BAD)
    monkeypatch.setattr(run_all, "HERE", scripts)
    monkeypatch.setattr(run_all, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(
        run_all,
        "BENCHES",
        (
            run_all.Bench("bad"),
            run_all.Bench("good", quick=("--size", "small", "--rounds", "1")),
            run_all.Bench("absent"),
        ),
    )
    code = run_all.main(["--quick", "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert code == 1
    assert "| good | step | sqlite | 1.200 s | 1.000 s | 1.20 | <= 1.3 | yes |" in printed
    assert "| bad | FAILED |" in printed and "the server at 5432 refused" in printed
    assert "| absent | MISSING |" in printed
    # --quick passes only the options the script's --help names (it has no --rounds).
    assert "own table, size small" in (tmp_path / "out" / "good.out").read_text()
    latest = json.loads((tmp_path / "results" / "latest.json").read_text())
    assert [b["status"] for b in latest["benches"]] == ["failed", "ok", "missing"]
    assert latest == json.loads((tmp_path / "out" / "suite.json").read_text())


def test_only_names_known_benches() -> None:
    assert [b.name for b in run_all.select("throughput,step_overhead")] == [
        "step_overhead",
        "throughput",
    ]
    with pytest.raises(SystemExit, match="unknown bench"):
        run_all.select("nope")
    assert "approval_latency" not in [b.name for b in run_all.select(None)]
