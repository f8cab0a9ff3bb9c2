"""A throwaway RabbitMQ node for the Celery tests: Debian's `rabbitmq-server` (installed by `make
test` when missing) started as its own Erlang node on free ports, with its data in a temporary
directory, so the tests never depend on (or disturb) a broker the machine may run. It can be
killed and started again on the same ports and data, as a broker restart in production."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

from zencourt_pipeline_tests.topology import free_port

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


def rabbitmq_available() -> bool:
    """Whether Debian's RabbitMQ server is installed (`make test` installs it)."""
    return RABBITMQ_SERVER.exists() and shutil.which("erl") is not None


class ThrowawayRabbit:
    """One RabbitMQ node under `tmp`; `url` is its AMQP URL (guest/guest, loopback only)."""

    def __init__(self, tmp: Path):
        self.dir = tmp / "rabbitmq"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port, self.dist_port = free_port(), free_port()
        self.url = f"pyamqp://guest:guest@127.0.0.1:{self.port}//"
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{self.port}\n")
        (self.dir / "rabbitmq-env.conf").write_text("")
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.dir),  # the Erlang cookie lives here
            "RABBITMQ_NODENAME": f"zc-{uuid.uuid4().hex[:8]}@localhost",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
        }
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> None:
        """Start the node and return once it answers AMQP."""
        log = open(self.dir / "server.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [str(RABBITMQ_SERVER)], env=self.env, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        raise RuntimeError(f"RabbitMQ did not start:\n{(self.dir / 'server.log').read_text()[-2000:]}")

    def answers(self) -> bool:
        """Whether an AMQP connection opens."""
        import kombu

        try:
            with kombu.Connection(self.url, connect_timeout=1) as conn:
                conn.connect()
            return True
        except Exception:  # noqa: BLE001 - any failure means not (yet) up
            return False

    def queued(self, queue: str) -> int:
        """Messages waiting in `queue` (0 when it does not exist)."""
        import kombu

        try:
            with kombu.Connection(self.url, connect_timeout=2) as conn:
                return conn.default_channel.queue_declare(queue=queue, passive=True).message_count
        except Exception:  # noqa: BLE001 - no such queue (yet), or the node is down
            return 0

    def kill(self) -> None:
        """SIGKILL the node (the Erlang VM and its helpers): the broker is gone."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(30)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM the node (killed after 20 s)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            self.kill()
        self.proc = None
