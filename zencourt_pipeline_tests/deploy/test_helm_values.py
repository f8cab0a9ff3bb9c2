"""docker/helm: the chart values and the workers' manifest agree on one image, one shared
environment (Celery executor, compute logs in the bucket with B2's checksum settings), and the
keys the chart renders into the instance are fields of the classes it names."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / "docker" / "helm"


def values() -> dict:
    return yaml.safe_load((HELM / "values.yaml").read_text())


def manifests() -> dict[tuple[str, str], dict]:
    docs = yaml.safe_load_all((HELM / "workers.yaml").read_text())
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def image(spec: dict) -> str:
    return f"{spec['repository']}:{spec['tag']}"


def test_every_process_runs_the_one_image():
    vals = values()
    [deployment] = vals["dagster-user-deployments"]["deployments"]
    code = image(deployment["image"])
    assert image(vals["dagsterWebserver"]["image"]) == code
    assert image(vals["dagsterDaemon"]["image"]) == code
    workers = [doc for (kind, _), doc in manifests().items() if kind == "Deployment"]
    assert {doc["metadata"]["name"] for doc in workers} == {"zencourt-worker-media", "zencourt-worker-providers"}
    for doc in workers:
        [container] = doc["spec"]["template"]["spec"]["containers"]
        assert container["image"] == code
        queue = doc["metadata"]["name"].rsplit("-", 1)[1]
        assert container["args"][:4] == ["zencourt", "worker", "--queue", queue]
        assert doc["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001


def test_every_dagster_process_gets_the_executor_and_compute_log_settings():
    vals = values()
    shared = manifests()[("ConfigMap", "zencourt-dagster-env")]["data"]
    assert shared["ZENCOURT_EXECUTOR"] == "celery"
    assert shared["AWS_REQUEST_CHECKSUM_CALCULATION"] == shared["AWS_RESPONSE_CHECKSUM_VALIDATION"] == "when_required"
    [deployment] = vals["dagster-user-deployments"]["deployments"]
    launcher = vals["runLauncher"]["config"]["k8sRunLauncher"]
    for name, spec in [("code server", deployment), ("runs", launcher), ("webserver", vals["dagsterWebserver"]),
                       ("daemon", vals["dagsterDaemon"])]:
        assert {"name": "zencourt-dagster-env"} in spec["envConfigMaps"], name
        assert {"name": "zencourt-compute-logs-key"} in spec["envSecrets"], name
    for name in ("code server", "runs"):  # the app settings (broker URL, DATABASE_URL, B2_*)
        assert {"name": "zencourt-env"} in (deployment if name == "code server" else launcher)["envSecrets"]
    for doc in manifests().values():
        if doc["kind"] == "Deployment":
            [container] = doc["spec"]["template"]["spec"]["containers"]
            refs = {ref.get("secretRef", ref.get("configMapRef"))["name"] for ref in container["envFrom"]}
            assert refs == {"zencourt-env", "zencourt-compute-logs-key", "zencourt-dagster-env"}
    # compute logs: every field read from the shared environment
    s3 = vals["computeLogManager"]["config"]["s3ComputeLogManager"]
    assert vals["computeLogManager"]["type"] == "S3ComputeLogManager"
    assert all(set(value) == {"env"} and value["env"] in shared for value in s3.values()), s3


def test_the_rendered_config_keys_are_fields_of_the_classes():
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
    from dagster_k8s import K8sRunLauncher

    vals = values()
    assert vals["runLauncher"]["type"] == "K8sRunLauncher"
    launcher_keys = {snake(key) for key in vals["runLauncher"]["config"]["k8sRunLauncher"]}
    assert launcher_keys <= set(K8sRunLauncher.config_type()), launcher_keys - set(K8sRunLauncher.config_type())
    s3_keys = {snake(key) for key in vals["computeLogManager"]["config"]["s3ComputeLogManager"]}
    assert s3_keys <= set(S3ComputeLogManager.config_type()), s3_keys - set(S3ComputeLogManager.config_type())
    # the chart's Celery subcharts serve the CeleryK8sRunLauncher only; the broker is external
    assert vals["rabbitmq"]["enabled"] is False and vals["redis"]["enabled"] is False
