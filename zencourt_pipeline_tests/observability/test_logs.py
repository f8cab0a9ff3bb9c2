"""Every process writes the same JSON log fields: `zencourt serve` and `zencourt webhooks` as real
processes configured by the environment only, and Dagster runs (the code location's console
logger; package stdlib logs reach the run's event log through `managed_python_loggers`)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import httpx
import pytest
import yaml

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.observability import logging as obs
from zencourt_pipeline_tests.topology import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COMMON = {"ts", "level", "logger", "msg", "role", "pid"}


def env_only(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "ZENCOURT_", "B2_", "VERCEL_"))}
    db_url = f"sqlite:///{tmp_path / 'app.db'}"
    AppDatabase.connect(db_url).db.upgrade()
    env.update(
        DATABASE_URL=db_url,
        ZENCOURT_DATA_DIR=str(tmp_path / "data"),
        ZENCOURT_LOG_FORMAT="json",
        LOG_LEVEL="info",
        VIDEO_SERVER_API_KEY="obs-key-123456",
        **extra,
    )
    return env


def json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    for record in records:
        assert COMMON <= set(record), record
        assert record["ts"].endswith("Z") and "T" in record["ts"]
    return records


def test_serve_logs_json_lines_with_the_common_fields(tmp_path):
    port = free_port()
    env = env_only(tmp_path, PORT=str(port))
    stderr = tmp_path / "serve.err"
    with open(stderr, "wb") as err:
        proc = subprocess.Popen([str(BIN / "zencourt"), "serve"], env=env, cwd=tmp_path, stdout=err, stderr=err)
    try:
        wait_for_port(port, 60)
        assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/video/batches/x").status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    records = json_lines(stderr.read_text())
    assert {r["role"] for r in records} == {"service"} and {r["pid"] for r in records} == {proc.pid}
    access = [r for r in records if r["logger"] == "zencourt_pipeline.service.access"]
    assert {(r["path"], r["status"]) for r in access} >= {("/health", 200), ("/video/batches/x", 401)}
    assert any(r["msg"] == "starting HTTP service" and r["port"] == port for r in records)
    assert "obs-key-123456" not in stderr.read_text()


def test_webhooks_deliver_once_logs_json(tmp_path):
    env = env_only(tmp_path)
    done = subprocess.run(
        [str(BIN / "zencourt"), "webhooks", "deliver", "--once", "--json"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"claimed": 0, "delivered": 0, "failed": 0, "dead": 0}
    records = json_lines(done.stderr)
    (off,) = [r for r in records if "webhook delivery is off" in r["msg"]]
    assert off["level"] == "warning" and off["role"] == "webhooks"
    assert off["logger"] == "zencourt_pipeline.notify.deliverer"


def test_text_format_and_context_fields():
    import io

    stream = io.StringIO()
    handler = obs.configure_logging("cli", stream=stream, fmt="text", level="info")
    try:
        with obs.log_context(batchId="b7", jobId=None):
            logging.getLogger("zencourt_pipeline.x").info("hello %s", "there", extra={"runId": "r1"})
        line = stream.getvalue().strip()
        assert " INFO    cli[" in line and "zencourt_pipeline.x: hello there" in line
        assert "batchId=b7" in line and "runId=r1" in line and "jobId" not in line
        with pytest.raises(ValueError):
            obs.log_format(value="xml")
    finally:
        logging.getLogger().removeHandler(handler)
        obs._role = None


def package_logging_asset():
    @dg.asset(name="obs_asset")
    def obs_asset() -> None:
        logging.getLogger("zencourt_pipeline.tests.obs").info("hello from the package", extra={"batchId": "b1"})
        logging.getLogger("zencourt_pipeline.tests.obs").debug("below python_log_level")

    return obs_asset


def instance_python_logs() -> dict:
    local = yaml.safe_load((ROOT / "dagster.yaml").read_text())["python_logs"]
    production = yaml.safe_load((ROOT / "docker" / "dagster.yaml").read_text())["python_logs"]
    assert local == production
    assert local["managed_python_loggers"] == ["zencourt_pipeline"] and local["python_log_level"] == "INFO"
    return local


def test_package_logs_reach_the_event_log_with_managed_python_loggers():
    with dg.instance_for_test(overrides={"python_logs": instance_python_logs()}) as instance:
        result = dg.materialize([package_logging_asset()], instance=instance)
        assert result.success
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("hello from the package" in m for m in messages)
    assert not any("below python_log_level" in m for m in messages)


def test_run_records_are_json_lines_with_run_fields(capfd, monkeypatch):
    monkeypatch.setenv("ZENCOURT_LOG_FORMAT", "json")
    with dg.instance_for_test(overrides={"python_logs": instance_python_logs()}) as instance:
        capfd.readouterr()
        result = dg.materialize([package_logging_asset()], instance=instance)
    assert result.success
    err = capfd.readouterr().err
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    ours = [r for r in records if r["msg"] == "hello from the package"]
    assert len(ours) == 1, err
    (line,) = ours
    assert COMMON <= set(line) and line["role"] == "run-worker" and line["level"] == "info"
    assert line["runId"] == result.run_id and line["stepKey"] == "obs_asset" and line["batchId"] == "b1"
    assert line["logger"] == "zencourt_pipeline.tests.obs"
    events = {r.get("eventType") for r in records if r.get("runId") == result.run_id}
    assert {"STEP_START", "STEP_SUCCESS"} <= events, events
