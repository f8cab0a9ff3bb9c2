"""`zencourt serve` as a subprocess, configured only through the environment, as production
starts it: the one helper of the service tests that talk to a real uvicorn process."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx

from zencourt_pipeline_tests.topology import BIN, free_port, wait_for_port


class ServeProcess:
    """A `zencourt serve` process on a free loopback port over `database_url`, local storage under
    `tmp/data`, `api_key` as `VIDEO_SERVER_API_KEY`; `env` adds or overrides variables. The
    constructor returns once the port answers (the service migrated the database first)."""

    def __init__(self, tmp: Path, database_url: str, api_key: str, env: dict[str, str] | None = None):
        self.tmp = tmp
        self.api_key = api_key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = tmp / "data"
        self.log = tmp / "serve.log"
        self.env = {
            "PATH": str(BIN) + ":/usr/bin:/bin",
            "HOME": str(tmp),
            "DATABASE_URL": database_url,
            "STORAGE_BACKEND": "local",
            "ZENCOURT_DATA_DIR": str(self.data_dir),
            "VIDEO_SERVER_API_KEY": api_key,
            "VIDEO_SERVER_URL": self.url,
            "PORT": str(self.port),
            "ZENCOURT_LOG_FORMAT": "json",
            **(env or {}),
        }
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([str(BIN / "zencourt"), "serve"], env=self.env, cwd=tmp, stdout=log, stderr=log)
        self.client = httpx.Client(base_url=self.url, timeout=30)
        try:
            wait_for_port(self.port, 60)
        except BaseException:
            self.stop()
            raise

    def call(self, method: str, path: str, key: str | None = "admin", *, bearer: bool = False, **kwargs) -> httpx.Response:
        """One request presenting `key` ("admin": the admin key; None: no key) as `x-api-key`, or
        as `Authorization: Bearer` with `bearer=True`."""
        key = self.api_key if key == "admin" else key
        headers = dict(kwargs.pop("headers", None) or {})
        if key is not None:
            headers.update({"Authorization": f"Bearer {key}"} if bearer else {"x-api-key": key})
        return self.client.request(method, path, headers=headers, **kwargs)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """`zencourt <args>` in the service's environment (its database), e.g. `keys create`."""
        return subprocess.run(
            [str(BIN / "zencourt"), *args], env=self.env, cwd=self.tmp, capture_output=True, text=True, timeout=120
        )

    def stop(self) -> None:
        """SIGTERM, as the container runtime stops it; killed after 30 s."""
        self.client.close()
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
