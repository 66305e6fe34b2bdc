"""The committed docs/openapi.json is the app's spec (`make openapi` regenerates it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from baton.api.app import create_app
from baton.cli.api import DEFAULT_SPEC, render_openapi
from tests.baton.api.world import World


def test_docs_openapi_json_is_current() -> None:
    assert DEFAULT_SPEC.exists(), "run `make openapi`"
    assert json.loads(DEFAULT_SPEC.read_text()) == create_app().openapi(), (
        "docs/openapi.json is out of date: run `make openapi`"
    )
    assert DEFAULT_SPEC.read_text() == render_openapi()


def test_the_spec_documents_bearer_auth_and_the_error_shape() -> None:
    spec = create_app().openapi()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    launch = spec["paths"]["/api/v1/runs"]["post"]
    assert set(launch["responses"]) >= {"202", "401", "403", "422", "429"}
    error = launch["responses"]["422"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/ErrorResponse"}


def test_openapi_command_writes_and_checks(tmp_path: Path) -> None:
    baton = str(Path(sys.executable).with_name("baton"))
    out = tmp_path / "openapi.json"
    assert subprocess.run([baton, "api", "openapi", "--out", str(out)], timeout=120).returncode == 0
    check = [baton, "api", "openapi", "--out", str(out), "--check"]
    assert subprocess.run(check, timeout=120).returncode == 0
    out.write_text("{}")
    assert subprocess.run(check, timeout=120, capture_output=True).returncode == 1


def test_the_docs_page_is_served(world: World) -> None:
    response = world.client.get("/docs")
    assert response.status_code == 200 and "swagger" in response.text.lower()
    assert world.client.get("/openapi.json").json()["info"]["title"] == "Baton API"
