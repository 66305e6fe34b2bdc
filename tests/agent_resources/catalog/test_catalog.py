"""The agent catalog reads its YAML with the language's bounded loader: same limits, same tags."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_resources.catalog import CATALOG_DIR, CatalogError, load_entry

ENTRY = "slug: probe\ntype: echo\ndescription: A probe.\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "probe.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_shipped_entry_loads() -> None:
    for path in sorted(CATALOG_DIR.glob("*.yaml")):
        assert load_entry(path).source == str(path)


def test_a_plain_entry_loads(tmp_path: Path) -> None:
    entry = load_entry(write(tmp_path, ENTRY))
    assert (entry.slug, entry.type) == ("probe", "echo")


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        ("config: !!python/object/apply:os.system [id]\n", 4),
        ("config: !!python/name:os.system\n", 4),
        ("config: !!python/object/new:os.system [id]\n", 4),
        ("config: !!python/module:os\n", 4),
        ("config: !secret {}\n", 4),
    ],
)
def test_python_and_custom_tags_are_refused_with_file_and_line(
    tmp_path: Path, extra: str, line: int
) -> None:
    path = write(tmp_path, ENTRY + extra)
    with pytest.raises(CatalogError) as info:
        load_entry(path)
    assert str(info.value).startswith(f"{path}:{line}:9: invalid YAML: tag ")
    assert "is not allowed" in str(info.value)


def test_a_billion_laughs_entry_is_refused(tmp_path: Path) -> None:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    path = write(tmp_path, ENTRY + "config:\n  " + "\n  ".join(lines) + "\n")
    with pytest.raises(CatalogError, match="more than 100000 nodes"):
        load_entry(path)


def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    path = write(tmp_path, ENTRY + "config: " + "[" * 10_000 + "]" * 10_000 + "\n")
    with pytest.raises(CatalogError, match=f"{path}:4:"):
        load_entry(path)


def test_an_oversized_entry_is_refused_without_being_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    with pytest.raises(CatalogError, match="over the 1048576-byte limit"):
        load_entry(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (ENTRY + "slug: again\n", "duplicate key 'slug'"),
        ("- a\n- b\n", "expected a mapping"),
        ("", "expected a mapping"),
        ("slug: [\n", "invalid YAML"),
    ],
)
def test_broken_entries_are_catalog_errors(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(CatalogError, match=expected):
        load_entry(write(tmp_path, text))
