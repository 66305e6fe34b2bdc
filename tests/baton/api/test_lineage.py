"""GET /api/v1/runs/{id}/tree and the list's root filter."""

from __future__ import annotations

import uuid

from baton.db.models import OrchestrationRun
from baton.store.definitions import DefinitionsRepository
from baton.store.runs import RunsRepository
from tests.baton.api.world import World


def _child(world: World, parent_id: uuid.UUID, index: int) -> uuid.UUID:
    with world.store.session() as s:
        parent = s.get(OrchestrationRun, parent_id)
        assert parent is not None
        definition = DefinitionsRepository(s).get_by_id(parent.definition_id)
        assert definition is not None
        child = RunsRepository(s).create(
            definition, inputs={}, parent=parent, parent_step_id="periods"
        )
        child.parent_step_index = index
        return child.id


def test_the_tree_and_the_root_filter(world: World) -> None:
    root = world._run("acme")
    first, second = _child(world, root, 0), _child(world, root, 1)
    grandchild = _child(world, first, 0)
    world._run("acme")  # another tree
    headers = world.headers("acme", "viewer")
    response = world.client.get(f"/api/v1/runs/{root}/tree", headers=headers)
    assert response.status_code == 200, response.text
    node = response.json()
    assert node["run_id"] == str(root)
    assert [c["run_id"] for c in node["children"]] == [str(first), str(second)]
    assert [c["index"] for c in node["children"]] == [0, 1]
    assert node["children"][0]["children"][0]["run_id"] == str(grandchild)
    listed = world.client.get("/api/v1/runs", params={"root_run_id": str(root)}, headers=headers)
    assert {r["run_id"] for r in listed.json()["items"]} == {
        str(root),
        str(first),
        str(second),
        str(grandchild),
    }
    other = world.client.get(f"/api/v1/runs/{root}/tree", headers=world.headers("other", "viewer"))
    assert other.status_code == 404
