"""Smoke of the built image under podman, run by hand (pytest does not collect it: it needs podman,
the image, a local Postgres and Debian's rabbitmq-server, and the build takes minutes).

The image's own production dagster.yaml on a scratch Postgres database with compute logs to moto
(a step's log written inside the container, read back from the bucket), then a Celery worker
container (`zencourt worker --queue media`) on a throwaway RabbitMQ node, until it is ready.
Host network (no container network here), runc, and ulimits under the sandbox's hard limits
(podman's defaults for root exceed them; crun also refuses the hybrid cgroup layout):

    podman build --runtime runc --network host --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 \\
      -f docker/Dockerfile -t localhost/zencourt-pipeline:local .
    PYTHONPATH=. .venv/bin/python zencourt_pipeline_tests/deploy/podman_smoke.py

With no registry, `python:3.11-slim-bookworm` is a Debian bookworm rootfs (`debootstrap
--variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates`) imported
with `podman import` and tagged with that name (`--pull=never` on the build). Where egress
re-signs TLS, the build also needs the host's CA bundle and pip.conf mounted read-only
(`-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro -v /etc/pip.conf:/etc/pip.conf:ro`).
"""

from __future__ import annotations

import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import boto3
from sqlalchemy.engine import make_url

from zencourt_pipeline_tests.broker import ThrowawayRabbit
from zencourt_pipeline_tests.topology import ScratchDatabases, compute_log_env, start_s3

PODMAN = ["podman", "run", "--rm", "--runtime", "runc", "--network=host",
          "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
IMAGE = "localhost/zencourt-pipeline:local"
BUCKET = "zencourt-smoke"
LOG_KEY = "dagster/compute-logs/storage/smoke-run/compute_logs/normalize_clips.out"
INSIDE = """
import dagster as dg
from dagster._core.storage.compute_log_manager import ComputeIOType
instance = dg.DagsterInstance.get()
manager = instance.compute_log_manager
print(type(instance.run_storage).__name__, type(manager).__name__, type(instance.run_coordinator).__name__)
with manager.open_log_stream(["smoke-run", "compute_logs", "normalize_clips"], ComputeIOType.STDOUT) as f:
    f.write("from the container\\n")
"""


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="zc-podman-smoke-"))
    server, endpoint = start_s3(BUCKET)
    dbs = ScratchDatabases("zc_smoke", n=1)
    rabbit = ThrowawayRabbit(tmp)
    rabbit.start()
    url = make_url(dbs.urls[0])
    env = {
        "DAGSTER_POSTGRES_HOST": url.host, "DAGSTER_POSTGRES_PORT": str(url.port or 5432),
        "DAGSTER_POSTGRES_USER": url.username, "DAGSTER_POSTGRES_PASSWORD": url.password or "",
        "DAGSTER_POSTGRES_DB": url.database, **compute_log_env(endpoint, BUCKET),
        "ZENCOURT_EXECUTOR": "celery", "ZENCOURT_CELERY_BROKER_URL": rabbit.url, "ZENCOURT_DATA_DIR": "/tmp/zc",
    }
    flags = [item for name, value in env.items() for item in ("-e", f"{name}={value}")]
    name = f"zc-smoke-worker-{uuid.uuid4().hex[:6]}"
    worker = None
    try:
        out = subprocess.run([*PODMAN, *flags, IMAGE, "python", "-c", INSIDE], capture_output=True, text=True,
                             timeout=300)
        print("instance in the container:", out.returncode, out.stdout.strip(), out.stderr.strip()[-1500:])
        assert out.returncode == 0 and "S3ComputeLogManager" in out.stdout
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-west-002", aws_access_key_id="k",
                          aws_secret_access_key="s")
        body = s3.get_object(Bucket=BUCKET, Key=LOG_KEY)["Body"].read()
        print("compute log read back from moto:", body)
        assert body == b"from the container\n"

        log = tmp / "worker.log"
        worker = subprocess.Popen(
            [*PODMAN, "--name", name, *flags, IMAGE, "zencourt", "worker", "--queue", "media", "--concurrency", "1",
             "--name", "smoke"], stdout=log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and " ready." not in log.read_text():
            time.sleep(1)
        lines = [line for line in log.read_text().splitlines() if "Connected to" in line or " ready." in line]
        print("worker:", lines)
        assert any(" ready." in line for line in lines), log.read_text()[-2000:]
    finally:
        if worker:
            subprocess.run(["podman", "stop", "-t", "10", name], capture_output=True)
            worker.wait(timeout=60)
        rabbit.stop()
        dbs.close()
        server.stop()


if __name__ == "__main__":
    main()
