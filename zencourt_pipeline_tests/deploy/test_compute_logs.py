"""Compute logs in the bucket (issue 13 point 2): the production docker/dagster.yaml's
`compute_logs` section, with its environment pointed at moto, is dagster-aws's
S3ComputeLogManager; a step's log written through it lands in the bucket, readable with boto3,
and its uploads carry none of the checksum headers B2 refuses (moto accepts them, so the test
looks at the requests themselves, with a control client that does send them)."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
import yaml
from dagster._core.storage.compute_log_manager import ComputeIOType, ComputeLogManager
from dagster._serdes import ConfigurableClassData

from zencourt_pipeline_tests.topology import compute_log_env, start_s3

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "zencourt-compute-logs"


@pytest.fixture
def moto_endpoint():
    server, endpoint = start_s3(BUCKET)
    yield endpoint
    server.stop()


def production_manager(tmp_path: Path) -> ComputeLogManager:
    """docker/dagster.yaml's compute_logs, built as the instance builds it (env sources resolved)."""
    section = yaml.safe_load((ROOT / "docker" / "dagster.yaml").read_text())["compute_logs"]
    config = {**section["config"], "local_dir": str(tmp_path / "staged")}  # the container's volume path
    data = ConfigurableClassData(section["module"], section["class"], yaml.safe_dump(config))
    return data.rehydrate(as_type=ComputeLogManager)


def sent_headers(client) -> list[dict[str, str]]:
    """The headers of every PutObject `client` sends from now on."""
    seen: list[dict[str, str]] = []
    client.meta.events.register("before-send.s3.PutObject", lambda request, **_: seen.append(dict(request.headers)))
    return seen


def checksum_headers(headers: dict[str, str]) -> set[str]:
    return {name.lower() for name in headers if name.lower().startswith(("x-amz-checksum", "x-amz-sdk-checksum"))}


def test_a_steps_compute_log_goes_to_the_bucket_without_b2s_refused_checksums(tmp_path, moto_endpoint, monkeypatch):
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager

    for name, value in compute_log_env(moto_endpoint, BUCKET).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # a session that reads this environment
    manager = production_manager(tmp_path)
    assert isinstance(manager, S3ComputeLogManager)
    client = manager._s3_session  # the client dagster_aws built from the environment
    assert client.meta.config.request_checksum_calculation == "when_required"
    assert client.meta.config.response_checksum_validation == "when_required"
    puts = sent_headers(client)

    # a fake step's stdout and stderr, written through the manager as a run writes them
    run_id = "5f1c0a4e-7d2b-4c1e-9a3f-0b6e2d8c4a71"
    log_key = [run_id, "compute_logs", "normalize_clips"]
    with manager.open_log_stream(log_key, ComputeIOType.STDOUT) as out:
        out.write("normalize: 6 clips, 30.0 s\n")
    with manager.open_log_stream(log_key, ComputeIOType.STDERR) as err:
        err.write("ffmpeg: done\n")

    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-west-002",
                      aws_access_key_id="e2e-key-id", aws_secret_access_key="e2e-application-key")
    prefix = f"dagster/compute-logs/storage/{run_id}/compute_logs/normalize_clips"
    body = s3.get_object(Bucket=BUCKET, Key=f"{prefix}.out")["Body"].read().decode()
    assert body == "normalize: 6 clips, 30.0 s\n"
    assert s3.get_object(Bucket=BUCKET, Key=f"{prefix}.err")["Body"].read().decode() == "ffmpeg: done\n"
    # what the UI reads: the manager finds the finished log in the bucket and returns its text
    assert manager.is_capture_complete(log_key)
    assert manager.get_log_data_for_type(log_key, ComputeIOType.STDOUT, 0, None)[0] == body.encode()

    assert puts, "the manager uploaded nothing"
    assert [checksum_headers(headers) for headers in puts] == [set()] * len(puts)
    # control: without the two settings, this botocore adds the CRC32 headers B2 answers 400 to
    monkeypatch.delenv("AWS_REQUEST_CHECKSUM_CALCULATION")
    monkeypatch.delenv("AWS_RESPONSE_CHECKSUM_VALIDATION")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    default = production_manager(tmp_path)._s3_session
    control = sent_headers(default)
    default.put_object(Bucket=BUCKET, Key="control.txt", Body=b"x")
    assert checksum_headers(control[0])


def test_the_production_compute_logs_read_every_value_from_the_environment():
    config = yaml.safe_load((ROOT / "docker" / "dagster.yaml").read_text())["compute_logs"]
    assert (config["module"], config["class"]) == ("dagster_aws.s3.compute_log_manager", "S3ComputeLogManager")
    sources = {key: value["env"] for key, value in config["config"].items() if isinstance(value, dict)}
    assert sources == {"bucket": "DAGSTER_COMPUTE_LOGS_BUCKET", "prefix": "DAGSTER_COMPUTE_LOGS_PREFIX",
                       "endpoint_url": "DAGSTER_COMPUTE_LOGS_ENDPOINT", "region": "DAGSTER_COMPUTE_LOGS_REGION"}
    # the topology of the e2e tests and compose set every one of them, and B2's checksum settings
    assert set(sources.values()) | {"AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION"} <= set(
        compute_log_env("http://127.0.0.1:1"))


@pytest.mark.postgres
def test_the_e2e_topologys_instance_keeps_compute_logs_in_its_bucket(tmp_path, moto_endpoint, postgres_url, monkeypatch):
    """The e2e tests' DAGSTER_HOME (topology.py: docker/dagster.yaml, storage paths moved into tmp)
    with the topology's environment loads, and its compute log manager writes to the moto bucket
    (the processes themselves start only in the e2e tests)."""
    import dagster as dg

    from zencourt_pipeline_tests.topology import BUCKET as E2E_BUCKET
    from zencourt_pipeline_tests.topology import Topology

    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-west-002", aws_access_key_id="k",
                 aws_secret_access_key="s").create_bucket(
        Bucket=E2E_BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-002"})
    topo = Topology(tmp_path, postgres_url, postgres_url, "http://127.0.0.1:9", moto_endpoint)
    try:
        for name, value in topo.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
        with dg.DagsterInstance.from_config(topo.env["DAGSTER_HOME"]) as instance:
            manager = instance.compute_log_manager
            assert type(manager).__name__ == "S3ComputeLogManager"
            with manager.open_log_stream(["run-1", "compute_logs", "compose_video"], ComputeIOType.STDOUT) as out:
                out.write("composed\n")
        key = "dagster/compute-logs/storage/run-1/compute_logs/compose_video.out"
        s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-west-002", aws_access_key_id="k",
                          aws_secret_access_key="s")
        assert s3.get_object(Bucket=E2E_BUCKET, Key=key)["Body"].read() == b"composed\n"
        assert str(tmp_path) in (tmp_path / "dagster_home" / "dagster.yaml").read_text()  # staged under tmp
    finally:
        topo.db.db.engine.dispose()
