"""The shipped deployment configs beyond one machine: the Celery instance opened for real on
Postgres; the Kubernetes files (nothing runs them here: no cluster) parsed and checked against
Dagster's instance schema and Baton's settings, and against each other."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import DagsterInstance
from dagster._core.instance.config import dagster_instance_config
from sqlalchemy.engine import make_url

from baton.settings import ExecutionSettings, Settings
from orchestration_defs.compiler.executor import K8S_HINT, job_executor

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"


def _manifests() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / "baton-k8s.yaml").read_text()) if d]


def _kind(kind: str, name: str) -> dict[str, Any]:
    [found] = [d for d in _manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _env_refs(node: object) -> set[str]:
    """Every ``{env: NAME}`` in a Dagster config."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {str(node["env"])}
        return set().union(*(_env_refs(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(_env_refs(v) for v in node)) if node else set()
    return set()


@pytest.mark.postgres
def test_the_celery_instance_opens_on_postgres_with_a_shared_artifact_folder(
    pg_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = make_url(pg_db)
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(DEPLOY / "dagster.celery.yaml", home / "dagster.yaml")
    for key, value in {
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_USER": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_DB": url.database or "",
        "DAGSTER_SHARED_DIR": str(tmp_path / "shared"),
    }.items():
        monkeypatch.setenv(key, value)
    with DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        # Step outputs (the fs IO manager) go to the shared folder every worker mounts.
        assert Path(instance.storage_directory()).is_relative_to(tmp_path / "shared")
        assert instance.get_runs(limit=1) == []


def test_the_k8s_instance_passes_dagsters_schema_and_names_the_k8s_launcher() -> None:
    config, _ = dagster_instance_config(str(K8S))
    assert config["run_launcher"]["module"] == "dagster_k8s"
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    launcher = config["run_launcher"]["config"]
    assert launcher["instance_config_map"] == "baton-dagster-instance"
    # Every variable the instance reads is set by the ConfigMap or the Secret.
    provided = set(_kind("ConfigMap", "baton-env")["data"]) | set(
        _kind("Secret", "baton-secrets")["stringData"]
    )
    assert _env_refs(config) <= provided, _env_refs(config) - provided
    assert launcher["env_config_maps"] == ["baton-env"]
    assert launcher["env_secrets"] == ["baton-secrets"]


def test_the_k8s_settings_are_baton_settings_and_choose_the_k8s_executor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {
        **_kind("ConfigMap", "baton-env")["data"],
        **_kind("Secret", "baton-secrets")["stringData"],
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.execution.executor == "k8s"
    known = {f"BATON_{name.upper()}" for name in Settings.model_fields}
    for key in env:
        if key.startswith("BATON_") and key not in {"BATON_IMAGE"}:
            assert key.split("__")[0] in known, f"{key} is not a Baton setting"


def test_the_helm_values_run_the_lazy_code_location_with_the_same_env() -> None:
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    [deployment] = values["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    assert args[args.index("--module-name") + 1] == "orchestration_defs.definitions"
    assert args[args.index("--attribute") + 1] == "defs"
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    for refs in (deployment, k8s, values["dagsterWebserver"]):
        assert refs["envConfigMaps"] == [{"name": "baton-env"}]
        assert refs["envSecrets"] == [{"name": "baton-secrets"}]
    api = _kind("Deployment", "baton-api")["spec"]["template"]["spec"]
    assert api["serviceAccountName"] == values["global"]["serviceAccountName"] == "baton-runs"
    [container] = api["containers"]
    assert container["command"][:3] == ["baton", "api", "serve"]


def test_the_k8s_executor_without_dagster_k8s_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "dagster_k8s", None)  # import fails, as without the package
    with pytest.raises(RuntimeError) as caught:
        job_executor(ExecutionSettings(executor="k8s"))
    assert str(caught.value) == K8S_HINT and "dagster-k8s==0.29.27" in K8S_HINT
