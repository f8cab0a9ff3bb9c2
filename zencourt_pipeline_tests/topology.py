"""The production topology as plain processes (no Docker engine here), for end-to-end tests.

Postgres databases (Dagster storage and the app database), moto's server as B2, and the same
processes docker/docker-compose.yml runs: `dagster code-server start`, `dagster-daemon run`,
`dagster-webserver`, `zencourt serve`; docker/dagster.yaml as the instance config. A receiver
stands in for the web app's completion-webhook endpoint.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import as_dict
from zencourt_pipeline.storage.b2 import B2Storage

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BUCKET = "zencourt-e2e"
API_KEY = "e2e-api-key-7d1c"
WEBHOOK_SECRET = "e2e-webhook-secret-5a9e"


POSTGRES_ADMIN_URL = os.environ.get("ZENCOURT_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


class ScratchDatabases:
    """`n` fresh PostgreSQL databases for one topology run (app, Dagster, ...); `close()` drops them."""

    def __init__(self, prefix: str, n: int = 2, admin_url: str = POSTGRES_ADMIN_URL):
        import sqlalchemy as sa

        self._sa = sa
        self.admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
        self.names = [f"{prefix}_{uuid.uuid4().hex[:10]}" for _ in range(n)]
        with self.admin.connect() as conn:
            for name in self.names:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self.urls = [admin_url.rsplit("/", 1)[0] + f"/{name}" for name in self.names]

    def close(self) -> None:
        with self.admin.connect() as conn:
            for name in self.names:
                conn.execute(self._sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


def e2e_storage(endpoint: str) -> B2Storage:
    """The topology's bucket on moto, as the test process reaches it."""
    return B2Storage(endpoint=endpoint, key_id="e2e-key-id", application_key="e2e-application-key",
                     bucket=BUCKET, region="us-west-002")


def compute_log_env(endpoint: str, bucket: str = BUCKET) -> dict[str, str]:
    """The environment docker/dagster.yaml's compute logs read (docker-compose.yml derives the same
    from B2_*): the bucket on moto, the key boto3 finds in the environment, B2's checksum settings."""
    return {
        "DAGSTER_COMPUTE_LOGS_BUCKET": bucket,
        "DAGSTER_COMPUTE_LOGS_PREFIX": "dagster/compute-logs",
        "DAGSTER_COMPUTE_LOGS_ENDPOINT": endpoint,
        "DAGSTER_COMPUTE_LOGS_REGION": "us-west-002",
        "AWS_ACCESS_KEY_ID": "e2e-key-id",
        "AWS_SECRET_ACCESS_KEY": "e2e-application-key",
        "AWS_DEFAULT_REGION": "us-west-002",
        "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
        "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_s3(bucket: str = BUCKET):
    """moto's S3 server on a free loopback port, with `bucket` created; returns (server, endpoint).

    moto keeps one state per process (every server in it shares it): it is reset first, so a
    test never sees another test's bucket or objects.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    httpx.post(f"{endpoint}/moto-api/reset", timeout=30).raise_for_status()
    boto3.client("s3", endpoint_url=endpoint, region_name="us-west-002", aws_access_key_id="e2e-key-id",
                 aws_secret_access_key="e2e-application-key").create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-west-002"})
    return server, endpoint


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on port {port} after {timeout:.0f} s")


class Topology:
    def __init__(self, tmp_path: Path, app_db_url: str, dagster_db_url: str, receiver_url: str, s3_endpoint: str,
                 extra_env: dict[str, str] | None = None):
        from sqlalchemy.engine import make_url

        self.tmp = tmp_path
        self.logs = tmp_path / "logs"
        self.logs.mkdir(exist_ok=True)
        home = tmp_path / "dagster_home"
        home.mkdir(exist_ok=True)
        # the production instance config, with the container's storage path moved into tmp
        config = (ROOT / "docker" / "dagster.yaml").read_text().replace("/opt/dagster/storage", str(home / "storage"))
        (home / "dagster.yaml").write_text(config)
        dagster_db = make_url(dagster_db_url)
        self.grpc_port, self.web_port, self.service_port = free_port(), free_port(), free_port()
        (tmp_path / "workspace.yaml").write_text(
            "load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
            f"      port: {self.grpc_port}\n      location_name: zencourt_pipeline\n"
        )
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "ZENCOURT_", "B2_", "VERCEL_"))},
            "DAGSTER_HOME": str(home),
            "DAGSTER_POSTGRES_HOST": dagster_db.host,
            "DAGSTER_POSTGRES_PORT": str(dagster_db.port or 5432),
            "DAGSTER_POSTGRES_USER": dagster_db.username,
            "DAGSTER_POSTGRES_PASSWORD": dagster_db.password or "",
            "DAGSTER_POSTGRES_DB": dagster_db.database,
            "DATABASE_URL": app_db_url,
            "ZENCOURT_DATA_DIR": str(tmp_path / "data"),
            "STORAGE_BACKEND": "b2",
            "B2_ENDPOINT": s3_endpoint,
            "B2_KEY_ID": "e2e-key-id",
            "B2_APPLICATION_KEY": "e2e-application-key",
            "B2_BUCKET_NAME": BUCKET,
            # compute logs in the bucket too (docker/dagster.yaml's S3ComputeLogManager), as compose sets them
            **compute_log_env(s3_endpoint),
            "GENERATION_PROVIDERS": "local",
            "VIDEO_SERVER_API_KEY": API_KEY,
            "PORT": str(self.service_port),
            "DAGSTER_WEBSERVER_URL": f"http://127.0.0.1:{self.web_port}",
            "VERCEL_API_URL": receiver_url,
            "VERCEL_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "LOG_LEVEL": "info",
            **(extra_env or {}),
        }
        self.procs: dict[str, subprocess.Popen] = {}
        self.commands: dict[str, list[str]] = {}  # name -> argv, so one process can be restarted
        self.envs: dict[str, dict[str, str]] = {}  # name -> its environment
        self.restarts: dict[str, int] = {}
        self.db = AppDatabase.connect(app_db_url)

    # -- processes -------------------------------------------------------------------------
    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start `args` as process `name` in the topology's environment (plus `env`), its output in logs/<name>.log."""
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        env = {**self.env, **(env or self.envs.get(name, {}))}
        proc = subprocess.Popen(args, env=env, cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        self.commands[name] = args
        self.envs[name] = env
        return proc

    def start_worker(self, name: str, queue: str, concurrency: int = 1) -> None:
        """A Celery worker (`zencourt worker`) named `name` on `queue`, with a data directory of its own."""
        self._spawn(name, [str(BIN / "zencourt"), "worker", "--queue", queue, "--concurrency", str(concurrency),
                           "--name", name], env={"ZENCOURT_DATA_DIR": str(self.tmp / f"data-{name}")})

    def start_code_server(self) -> None:
        self._spawn("code-server", [str(BIN / "dagster"), "code-server", "start", "-m", "zencourt_pipeline.definitions",
                                    "-h", "127.0.0.1", "-p", str(self.grpc_port)])
        wait_for_port(self.grpc_port, 90)

    def start_daemon(self) -> None:
        self._spawn("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(self.tmp / "workspace.yaml")])

    def start_webserver(self) -> None:
        self._spawn("webserver", [str(BIN / "dagster-webserver"), "-w", str(self.tmp / "workspace.yaml"),
                                  "-h", "127.0.0.1", "-p", str(self.web_port)])
        wait_for_port(self.web_port, 90)

    def start_service(self) -> None:
        self._spawn("serve", [str(BIN / "zencourt"), "serve"])
        wait_for_port(self.service_port, 60)

    def start_all(self) -> None:
        self.db.db.upgrade()
        self.start_code_server()
        self.start_service()
        self.start_webserver()
        self.start_daemon()

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # it died on its own already
            pass
        proc.wait(timeout=30)

    def restart(self, name: str, *, delay: float = 0.0, kill: bool = True) -> None:
        """SIGKILL one process (when still tracked and `kill`) and start it again with the same
        command and environment, as a supervisor (docker's `restart: always`) would."""
        if name in self.procs and (kill or self.procs[name].poll() is None):
            self.kill(name)  # never two of one process: a live one is killed even with kill=False
        if delay:
            time.sleep(delay)
        self.restarts[name] = self.restarts.get(name, 0) + 1
        self._spawn(name, self.commands[name])
        port = {"code-server": self.grpc_port, "webserver": self.web_port, "serve": self.service_port}.get(name)
        if port is not None:
            wait_for_port(port, 90)

    def alive(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def run_workers(self) -> list[int]:
        """Pids of this topology's run workers (the code server's multiprocessing children)."""
        pids = []
        home = self.env["DAGSTER_HOME"].encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            worker = b"execute_run" in cmdline or b"multiprocessing-fork" in cmdline
            if worker and b"DAGSTER_HOME=" + home + b"\0" in environ:
                pids.append(int(entry.name))
        return pids

    def describe_processes(self) -> str:
        home = self.env["DAGSTER_HOME"].encode()
        rows = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")[:200]
                ppid = (entry / "stat").read_text().split(") ")[1].split()[1]
            except (OSError, IndexError):
                continue
            if b"DAGSTER_HOME=" + home + b"\0" in environ:
                rows.append(f"{entry.name} ppid={ppid} {cmdline.decode(errors='replace')}")
        return "\n".join(rows)

    def kill_run_workers(self, pids: list[int] | None = None) -> int:
        """SIGKILL the given run workers (found beforehand, so the kill lands at once) or all found now."""
        pids = self.run_workers() if pids is None else pids
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def stop_all(self) -> None:
        """SIGTERM every process at once, give them 15 s together, SIGKILL what is left."""
        procs = [self.procs.pop(name) for name in list(self.procs)]
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 15
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        self.db.db.dispose()

    def log_tails(self, lines: int = 25) -> str:
        parts = []
        for path in sorted(self.logs.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)

    # -- observation -----------------------------------------------------------------------
    def wait_for_status(self, batch_id: str, statuses: set[str], timeout: float = 240) -> str:
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            status = self.db.batches.get_batch(batch_id).status
            if status in statuses:
                return status
            time.sleep(0.5)
        raise AssertionError(f"batch {batch_id} is {status!r} after {timeout:.0f} s\n{self.db_state(batch_id)}\n{self.log_tails()}")

    def db_state(self, batch_id: str) -> str:
        keep = ("id", "status", "provider", "provider_task_id", "error_code", "raw_clip_key", "task_id", "job_id",
                "source", "provider_meta")

        def kept(record) -> dict:  # statuses as their plain strings, as the rows hold them
            return {k: str(v) if isinstance(v, str) else v for k, v in as_dict(record).items() if k in keep}

        lines = [f"job {kept(j)}" for j in self.db.batches.get_jobs(batch_id)]
        lines += [f"task {kept(t)}" for t in self.db.ledger.tasks_for_batch(batch_id)]
        lines += [f"completion {kept(c)}" for c in self.db.completions.completions_for_batch(batch_id)]
        return "\n".join(lines)

    @contextmanager
    def instance(self) -> Iterator:
        """The topology's Dagster instance, opened in this process with its environment (restored after)."""
        import dagster as dg

        saved = dict(os.environ)
        os.environ.update({k: v for k, v in self.env.items() if k.startswith(("DAGSTER_", "ZENCOURT_"))})
        try:
            with dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"]) as instance:
                yield instance
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def service(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, f"http://127.0.0.1:{self.service_port}{path}",
                             headers={"x-api-key": API_KEY}, timeout=30, **kwargs)
