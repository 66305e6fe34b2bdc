"""Loading files and folders: checksums, clashes between files, newest versions."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agent_resources.contracts import agent_input_checks
from orchestration_defs.language.library import (
    LoadedDefinition,
    definition_files,
    latest_versions,
    load_file,
    load_library,
    load_text,
    spec_checksum,
)

AGENTS = frozenset({"echo"})
LIBRARY = Path(__file__).resolve().parents[3] / "orchestration_defs" / "library"


def flow(slug: str = "demo", version: int = 1, organization: str | None = None) -> str:
    org = f"organization: {organization}\n" if organization else ""
    return (
        f"slug: {slug}\nname: Demo\nversion: {version}\n{org}"
        "steps:\n  - id: a\n    agent: echo\n    with: {text: hi}\n"
    )


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_load_text_valid() -> None:
    spec, errors = load_text(flow(), source="demo.yaml", known_agents=AGENTS)
    assert errors == []
    assert spec is not None
    assert spec.slug == "demo"


def test_load_text_broken_yaml_gives_one_error_with_a_line() -> None:
    spec, errors = load_text(
        "slug: x\nname: [oops\nversion: 1\n", source="x.yaml", known_agents=None
    )
    assert spec is None
    assert len(errors) == 1
    assert (errors[0].source, errors[0].line, errors[0].field) == ("x.yaml", 3, "")
    assert errors[0].message.startswith("invalid YAML: ")


def test_load_text_reports_duplicate_keys_with_the_other_problems_sorted_by_line() -> None:
    text = flow().replace("name: Demo\n", "name: Demo\ncolour: blue\nname: Again\n")
    spec, errors = load_text(text, source="d.yaml", known_agents=AGENTS)
    assert spec is None
    assert [(e.line, e.field, e.message) for e in errors] == [
        (3, "colour", "unknown key"),
        (4, "", "duplicate key 'name'"),
    ]


def test_load_file_gives_path_and_checksum(tmp_path: Path) -> None:
    path = write(tmp_path, "demo.yaml", flow())
    loaded, errors = load_file(path, known_agents=AGENTS)
    assert errors == []
    assert loaded is not None
    assert loaded.path == path
    assert loaded.checksum == spec_checksum(loaded.spec)
    assert len(loaded.checksum) == 64


def test_load_file_that_cannot_be_read(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"\xff\xfe\x00 not utf-8")
    loaded, errors = load_file(path, known_agents=AGENTS)
    assert loaded is None
    assert [(e.source, e.line) for e in errors] == [(str(path), None)]
    assert errors[0].message.startswith("cannot read file")


def test_checksum_ignores_comments_layout_and_key_order() -> None:
    block = flow()
    flowing = textwrap.dedent(
        """\
        # a comment that changes nothing
        version: 1      # neither does this one
        name: "Demo"
        slug: demo
        steps: [{agent: echo, with: {text: 'hi'}, id: a}]
        """
    )
    first, _ = load_text(block, source="a", known_agents=AGENTS)
    second, _ = load_text(flowing, source="b", known_agents=AGENTS)
    assert first is not None and second is not None
    assert spec_checksum(first) == spec_checksum(second)


def test_checksum_changes_with_content() -> None:
    first, _ = load_text(flow(), source="a", known_agents=AGENTS)
    second, _ = load_text(flow().replace("text: hi", "text: ho"), source="b", known_agents=AGENTS)
    assert first is not None and second is not None
    assert spec_checksum(first) != spec_checksum(second)


def test_definition_files_finds_yaml_recursively_in_order(tmp_path: Path) -> None:
    b = write(tmp_path, "b.yaml", flow("b"))
    a = write(tmp_path, "a.yml", flow("a"))
    nested = write(tmp_path, "sub/c.yaml", flow("c"))
    write(tmp_path, "notes.txt", "not a definition")
    single = write(tmp_path / "elsewhere", "any-name.conf", flow("d"))
    files, errors = definition_files([tmp_path / "b.yaml", tmp_path / "missing", single])
    assert files == [b, single]
    assert [(e.source, e.message) for e in errors] == [
        (str(tmp_path / "missing"), "no such file or folder")
    ]
    files, errors = definition_files([tmp_path])
    assert files == [a, b, nested]
    assert errors == []


def test_load_library_collects_every_problem(tmp_path: Path) -> None:
    write(tmp_path, "good.yaml", flow("good"))
    write(tmp_path, "bad.yaml", flow("bad").replace("agent: echo", "agent: nobody"))
    write(tmp_path, "broken.yaml", "slug: [\n")
    loaded, errors = load_library([tmp_path], known_agents=AGENTS)
    assert [item.spec.slug for item in loaded] == ["good"]
    assert sorted(Path(e.source).name for e in errors) == ["bad.yaml", "broken.yaml"]


def test_same_slug_and_version_in_two_files_clash(tmp_path: Path) -> None:
    first = write(tmp_path, "one.yaml", flow("demo", 1))
    second = write(tmp_path, "two.yaml", flow("demo", 1).replace("text: hi", "text: ho"))
    loaded, errors = load_library([tmp_path], known_agents=AGENTS)
    assert len(loaded) == 2
    assert [(e.source, e.line, e.field, e.message) for e in errors] == [
        (str(second), 1, "version", f"'demo' version 1 is also defined in {first}")
    ]


def test_other_versions_do_not_clash(tmp_path: Path) -> None:
    write(tmp_path, "one.yaml", flow("demo", 1))
    write(tmp_path, "two.yaml", flow("demo", 2))
    write(tmp_path, "three.yaml", flow("other", 1, organization="acme"))
    loaded, errors = load_library([tmp_path], known_agents=AGENTS)
    assert errors == []
    assert len(loaded) == 3


def test_slugs_giving_the_same_job_name_clash(tmp_path: Path) -> None:
    first = write(tmp_path, "1.yaml", flow("a-b"))
    second = write(tmp_path, "2.yaml", flow("a_b"))
    loaded, errors = load_library([tmp_path], known_agents=AGENTS)
    assert {item.spec.job_name for item in loaded} == {"a_b"}
    assert [(e.source, e.field, e.message) for e in errors] == [
        (str(second), "slug", f"slug 'a_b' gives the same job name as 'a-b' in {first}")
    ]


def _loaded(slug: str, version: int) -> LoadedDefinition:
    spec, errors = load_text(flow(slug, version), source="x", known_agents=AGENTS)
    assert spec is not None, errors
    return LoadedDefinition(spec, Path(f"{slug}-{version}.yaml"), spec_checksum(spec))


def test_latest_versions_keeps_the_newest_of_each_slug_in_slug_order() -> None:
    items = [_loaded("zeta", 1), _loaded("alpha", 3), _loaded("zeta", 4), _loaded("alpha", 2)]
    newest = latest_versions(items)
    assert [(i.spec.slug, i.spec.version) for i in newest] == [("alpha", 3), ("zeta", 4)]
    assert latest_versions([]) == []


def test_the_shipped_library_is_valid() -> None:
    loaded, errors = load_library([LIBRARY], known_agents=agent_input_checks())
    assert [str(e) for e in errors] == []
    slugs = [item.spec.slug for item in loaded]
    assert {"hello", "content-pipeline", "content-review"} <= set(slugs)
    assert len(slugs) == len(list(LIBRARY.glob("*.yaml")))


@pytest.mark.parametrize("name", ["hello.yaml", "content-pipeline.yaml"])
def test_shipped_examples_load_one_by_one(name: str) -> None:
    loaded, errors = load_file(LIBRARY / name, known_agents=agent_input_checks())
    assert errors == []
    assert loaded is not None


def test_a_slug_cannot_belong_to_two_organizations(tmp_path: Path) -> None:
    # Each slug is one Dagster job; a second organization's flow would silently lose it.
    first = write(tmp_path, "1.yaml", flow("demo", 1))
    second = write(tmp_path, "2.yaml", flow("demo", 1, organization="acme"))
    _, errors = load_library([tmp_path], known_agents=AGENTS)
    assert [(e.source, e.field) for e in errors] == [(str(second), "organization")]
    assert f"slug 'demo' is also used by organization 'global' in {first}" in errors[0].message


# --- the bounded loader, through files ---------------------------------------------------------


def test_a_python_tag_in_a_file_is_an_error_with_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "evil.yaml", flow() + "x: !!python/object/apply:os.system [ls]\n")
    definition, errors = load_file(path, known_agents=AGENTS)
    assert definition is None
    assert [str(e) for e in errors] == [
        f"{path}:8:4: invalid YAML: tag 'tag:yaml.org,2002:python/object/apply:os.system' is "
        "not allowed (only the YAML core schema's: !!str, !!int, !!float, !!bool, !!null, "
        "!!seq, !!map)"
    ]


def test_a_billion_laughs_file_is_an_error_and_the_rest_of_the_library_loads(
    tmp_path: Path,
) -> None:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    write(tmp_path, "bomb.yaml", "\n".join(lines) + "\n")
    write(tmp_path, "good.yaml", flow())
    loaded, errors = load_library([tmp_path], known_agents=AGENTS)
    assert [d.spec.slug for d in loaded] == ["demo"]
    assert len(errors) == 1 and errors[0].source.endswith("bomb.yaml")
    assert errors[0].line == 6 and "more than 100000 nodes" in errors[0].message


def test_a_file_over_the_size_limit_is_refused_without_being_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    definition, errors = load_file(path, known_agents=AGENTS)
    assert definition is None
    assert [str(e) for e in errors] == [
        f"{path}: invalid YAML: the file is over the 1048576-byte limit"
    ]
