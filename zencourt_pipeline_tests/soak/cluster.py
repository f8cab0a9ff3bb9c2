"""A throwaway PostgreSQL cluster the soak owns, so its database restart is real.

`initdb` in a temporary directory, started with `pg_ctl` on a free loopback port (trust auth,
user `postgres`); `restart()` is `pg_ctl restart -m fast`: every connection of every process
drops, and the server is back a second or two later. As root the cluster belongs to the
`postgres` user (PostgreSQL refuses to run as root). Debian's server binaries are needed
(`scripts/with-postgres.sh` installs them where no server runs); without them `available()` is
False and the soak terminates connections instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from zencourt_pipeline_tests.topology import free_port


def _bindir() -> Path | None:
    dirs = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "initdb").exists()]
    return max(dirs, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0, default=None)


class OwnCluster:
    """initdb + pg_ctl on a free port; `admin_url` for ScratchDatabases; `restart()`, `stop()`."""

    def __init__(self) -> None:
        self.bindir = _bindir()
        self.port = free_port()
        self.dir: Path | None = None
        self.restarts = 0

    @staticmethod
    def available() -> bool:
        """Whether the server binaries are here (and, as root, the `postgres` user to run them)."""
        if _bindir() is None:
            return False
        return os.geteuid() != 0 or shutil.which("runuser") is not None

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120.0) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)

    def start(self) -> OwnCluster:
        self.dir = Path(tempfile.mkdtemp(prefix="zencourt-soak-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        data = self.dir / "data"
        self._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions")
        self._run("pg_ctl", "-D", str(data), "-l", str(self.dir / "server.log"), "-w", "-t", "60", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=300", "start")
        return self

    def restart(self) -> None:
        """A real restart: fast shutdown (every backend ends), then up again."""
        assert self.dir is not None
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "-t", "60", "restart", "-l",
                  str(self.dir / "server.log"))
        self.restarts += 1

    def stop(self) -> None:
        if self.dir is None:
            return
        try:
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop", timeout=60.0)
        except (subprocess.SubprocessError, OSError):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None
