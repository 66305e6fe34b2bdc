"""The lazy code location: a code server syncs the library and lists every valid job; a run
worker builds only its own job from the stored spec; invalid files are left out and shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from dagster._core.remote_representation.external_data import RepositorySnap

from baton.library import library_problems, stored_job_names, stored_job_spec, sync_library
from baton.settings import PACKAGE_ROOT, get_settings
from baton.store.service import RunStore
from orchestration_defs.definitions import PROBLEMS_JOB, build_definitions
from orchestration_defs.language.errors import SpecErrors
from tests.helpers import write_library

GOOD = """
slug: {slug}
name: {slug}
version: {version}
steps:
  - id: greet
    agent: echo
    with: {{text: "v{version}"}}
outputs:
  text: "{{{{ steps.greet.output.text }}}}"
"""
BROKEN = """
slug: broken
name: Broken
version: 1
steps:
  - id: greet
    agent: no-such-agent
"""


def good(slug: str, version: int = 1) -> str:
    return GOOD.format(slug=slug, version=version)


@pytest.fixture
def library(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A library folder with two valid files and one invalid, used by the settings."""
    folder = write_library(
        tmp_path / "lib", {"a.yaml": good("alpha"), "b.yaml": good("beta"), "x.yaml": BROKEN}
    )
    monkeypatch.setenv("BATON_DATABASE_URL", db_url)
    monkeypatch.setenv("BATON_LIBRARY_DIR", str(folder))
    get_settings.cache_clear()
    return folder


def test_an_invalid_file_leaves_the_others_loaded_and_is_shown(library: Path) -> None:
    repository = build_definitions()
    names = {job.name for job in repository.get_all_jobs()}
    assert names == {"alpha", "beta", PROBLEMS_JOB}
    # The Dagster UI's job list shows the problem, with the file and line, in its description.
    problems = repository.get_job(PROBLEMS_JOB)
    assert str(library / "x.yaml") in (problems.description or "")
    assert "no-such-agent" in (problems.description or "")
    # The sensors launch the valid jobs by name; the snapshot (what the daemon reads) lists them.
    snap = RepositorySnap.from_def(repository)
    approval = next(s for s in snap.sensors if s.name == "baton_approval_sensor")
    assert set(approval.target_dict) == {"alpha", "beta"}
    assert repository.description and "1 invalid library file" in repository.description
    # The CLI and the API read the same record.
    [problem] = library_problems(RunStore(get_settings().db_url))
    assert problem.path == str(library / "x.yaml")
    assert any("no-such-agent" in line and ":" in line for line in problem.lines)


def test_strict_mode_refuses_to_load_as_before(
    library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_STRICT_LIBRARY", "true")
    get_settings.cache_clear()
    with pytest.raises(SpecErrors, match="no-such-agent"):
        build_definitions()


def test_fixing_the_file_clears_the_problem_and_breaking_one_drops_its_job(library: Path) -> None:
    (library / "x.yaml").write_text(good("broken"))
    (library / "b.yaml").write_text("slug: beta\nversion: [")
    settings = get_settings()
    synced = sync_library(settings)
    assert [item.spec.slug for item in synced.newest] == ["alpha", "broken"]
    assert [p.path for p in library_problems(RunStore(settings.db_url))] == [
        str(library / "b.yaml")
    ]
    names = {job.name for job in build_definitions().get_all_jobs()}
    assert names == {"alpha", "broken", PROBLEMS_JOB}


def test_a_version_changed_in_place_is_a_problem_of_its_file_only(library: Path) -> None:
    settings = get_settings()
    sync_library(settings)
    (library / "a.yaml").write_text(good("alpha").replace('"v1"', '"changed"'))
    synced = sync_library(settings)
    assert [item.spec.slug for item in synced.newest] == ["beta"]
    paths = [p.path for p in synced.problems]
    assert paths == [str(library / "a.yaml"), str(library / "x.yaml")]
    assert "increase 'version'" in synced.problems[0].lines[0]


def test_stored_jobs_and_specs_need_no_library(library: Path) -> None:
    settings = get_settings()
    sync_library(settings)
    store = RunStore(settings.db_url)
    for file in library.iterdir():
        file.unlink()  # a run worker never reads the folder
    assert stored_job_names(store) == ["alpha", "beta"]
    spec = stored_job_spec(store, "alpha")
    assert spec is not None and (spec.slug, spec.version) == ("alpha", 1)
    assert stored_job_spec(store, "nothing") is None


def test_a_pinned_version_is_built_from_its_stored_spec(library: Path) -> None:
    settings = get_settings()
    sync_library(settings)
    store = RunStore(settings.db_url)
    run_id = store.create_run(
        organization="global", slug="alpha", version=1, inputs={}, created_by="test"
    )
    (library / "a.yaml").write_text(good("alpha", version=2))
    sync_library(settings)
    assert stored_job_names(store) == ["alpha", "alpha__v1", "beta"]
    pinned = stored_job_spec(store, "alpha__v1")
    assert pinned is not None and (pinned.job_name, pinned.version) == ("alpha__v1", 1)
    newest = stored_job_spec(store, "alpha")
    assert newest is not None and newest.version == 2
    assert store.get_run(run_id).status == "pending"


RUN_WORKER = """
import json, sys
from dagster._core.definitions.reconstruct import ReconstructableRepository
repository = ReconstructableRepository.for_module(
    "orchestration_defs.definitions", "defs", working_directory=sys.argv[1]
)
job = repository.get_reconstructable_job(sys.argv[2]).get_definition()
data = repository.get_definition()._repository_data
print(json.dumps({
    "job": job.name,
    "data": type(data).__name__,
    "built": sorted(data._jobs),
    "resources": sorted(job.resource_defs),
}))
"""


def _run_worker(job_name: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", RUN_WORKER, str(PACKAGE_ROOT), job_name],
        env={**os.environ, **_baton_env()},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _baton_env() -> dict[str, str]:
    settings = get_settings()
    return {
        "BATON_DATABASE_URL": settings.db_url,
        "BATON_LIBRARY_DIR": settings.library_dir,
        "BATON_DATA_DIR": str(settings.data_dir),
    }


def test_a_run_worker_builds_only_its_job_without_the_library(library: Path) -> None:
    build_definitions()  # the code server's load: sync and list
    for file in library.iterdir():
        file.unlink()  # the library may even be gone: the worker reads the tables
    result = _run_worker("beta")
    assert result["job"] == "beta"
    assert result["data"] == "StoredJobs"
    assert result["built"] == ["beta"]
    assert "baton_store" in result["resources"]  # type: ignore[operator]


def test_a_run_worker_without_the_job_fails_clearly(library: Path) -> None:
    build_definitions()
    with pytest.raises(subprocess.CalledProcessError) as failed:
        _run_worker(f"missing_{uuid.uuid4().hex[:6]}")
    assert "no stored definition has this job name" in failed.value.stderr


UNDOABLE = """
slug: undo-me
name: Undo me
version: 1
steps:
  - id: greet
    agent: echo
    with: {text: hi}
    compensate: {agent: echo, with: {undo: "{{ step.output.text }}"}}
"""


def test_a_spec_with_compensable_steps_lists_its_compensation_job_and_sensor(
    library: Path,
) -> None:
    (library / "u.yaml").write_text(UNDOABLE)
    repository = build_definitions()
    names = set(repository.job_names)
    assert {"alpha", "beta", "undo_me", "undo_me__compensate"} <= names
    assert "alpha__compensate" not in names  # no compensable step, no job
    job = repository.get_job("undo_me__compensate")
    assert [node.name for node in job.nodes] == ["undo_me__compensate__run"]
    sensor = repository.get_sensor_def("baton_compensation_sensor")
    assert [t.job_name for t in sensor.targets] == ["undo_me__compensate"]


def test_a_run_worker_builds_a_compensation_job_from_the_stored_spec(library: Path) -> None:
    (library / "u.yaml").write_text(UNDOABLE)
    build_definitions()
    for file in library.iterdir():
        file.unlink()
    result = _run_worker("undo_me__compensate")
    assert result["job"] == "undo_me__compensate"
    assert result["built"] == ["undo_me__compensate"]
    assert {"baton_store", "agent_echo"} <= set(result["resources"])  # type: ignore[call-overload]
