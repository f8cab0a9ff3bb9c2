"""scripts/with-postgres.sh: `make test` brings its own PostgreSQL when none answers.

Run against a port where nothing listens, the script must start a real throwaway cluster there,
hand the command its URL, pass the command's exit status through, and leave nothing behind (the
server stopped, its directory deleted), also when the command fails."""

from __future__ import annotations

import glob
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "with-postgres.sh"

pytestmark = pytest.mark.skipif(
    not glob.glob("/usr/lib/postgresql/*/bin/initdb"), reason="PostgreSQL server binaries are not installed"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


PROBE = """
import os, sqlalchemy as sa
url = os.environ["ZENCOURT_TEST_POSTGRES_URL"]
assert os.environ["ZENCOURT_BENCH_POSTGRES_URL"] == url
with sa.create_engine(url).connect() as conn:
    print("server", conn.execute(sa.text("show server_version")).scalar())
    print("dir", conn.execute(sa.text("show data_directory")).scalar())
raise SystemExit(int(os.environ.get("PROBE_EXIT", "0")))
"""


def _run(port: int, exit_code: int) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ZENCOURT_TEST_POSTGRES_URL": f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres",
        "PROBE_EXIT": str(exit_code),
    }
    env.pop("ZENCOURT_BENCH_POSTGRES_URL", None)
    return subprocess.run(
        [str(SCRIPT), sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("exit_code", [0, 3])
def test_throwaway_cluster_when_nothing_answers(exit_code: int) -> None:
    port = _free_port()
    assert not _answers(port)
    done = _run(port, exit_code)
    assert done.returncode == exit_code, done.stderr
    assert f"nothing answers on 127.0.0.1:{port}" in done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["server"].split(".")[0].isdigit()
    data_dir = Path(lines["dir"])
    assert data_dir.parent.name.startswith("zencourt-pg.")
    # stopped and deleted, whatever the command's exit
    assert not _answers(port)
    assert not data_dir.parent.exists()


def test_existing_server_is_used_as_is(tmp_path: Path) -> None:
    """With a server answering (the throwaway one of the outer call), no second cluster starts."""
    port = _free_port()
    inner = f"{SCRIPT} {sys.executable} -c 'print(1)'"
    env = {**os.environ, "ZENCOURT_TEST_POSTGRES_URL": f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"}
    done = subprocess.run([str(SCRIPT), "bash", "-c", inner], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("starting a throwaway cluster") == 1
    assert done.stdout.strip() == "1"
