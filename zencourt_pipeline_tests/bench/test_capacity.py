"""`python -m zencourt_pipeline.bench.capacity` (the capacity model of `make bench`, issue 13 point 5)
in quick mode: a two-clip batch through the stage functions, every figure printed and positive."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from zencourt_pipeline.bench.capacity import MeteredStorage, cpu_seconds
from zencourt_pipeline.storage.local import LocalStorage

STAGES = ["intake", "generate_local", "collect", "normalize", "compose", "upload", "run_startup"]
LINE = re.compile(r"^([a-z0-9_]+): (-?\d+(?:\.\d+)?)$")


def test_quick_capacity_prints_every_stage_and_the_batches_per_core_hour(tmp_path):
    env = {**os.environ, "ZENCOURT_BENCH_QUICK": "1", "ZENCOURT_BENCH_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "zencourt_pipeline.bench.capacity"],
        capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = {}
    for line in proc.stdout.splitlines():
        match = LINE.match(line)
        assert match, f"not a `name: number` line: {line!r}"
        figures[match.group(1)] = float(match.group(2))
    names = [f"capacity_cpu_s_{stage}" for stage in STAGES] + ["capacity_cpu_s_batch", "capacity_batches_per_core_hour"]
    assert all(figures.get(name, 0) > 0 for name in names), {name: figures.get(name) for name in names}
    assert (figures["capacity_clips"], figures["capacity_outputs"], figures["capacity_runs_per_batch"]) == (2, 1, 2)
    # the batch is the stages a deployment with paid providers runs here (not the local renders)
    local = ["intake", "collect", "normalize", "compose", "upload"]
    parts = sum(figures[f"capacity_cpu_s_{s}"] for s in local) + 2 * figures["capacity_cpu_s_run_startup"]
    assert figures["capacity_cpu_s_batch"] == pytest.approx(parts, abs=0.01)
    assert figures["capacity_batches_per_core_hour"] == pytest.approx(3600 / figures["capacity_cpu_s_batch"], rel=0.01)
    assert figures["capacity_cpu_s_batch_local"] > figures["capacity_cpu_s_batch"]
    assert figures["capacity_upload_mb"] > 0 and figures["capacity_outputs_rendered"] == 1
    assert list(tmp_path.iterdir()) == []  # the section cleans up after itself


def test_metered_storage_counts_the_puts_and_passes_everything_else_through(tmp_path):
    storage = LocalStorage(tmp_path / "storage")
    metered = MeteredStorage(storage)
    (tmp_path / "a.bin").write_bytes(b"x" * 1000)
    uri = metered.put_file("out/a.bin", tmp_path / "a.bin")
    metered.put_bytes("out/b.txt", b"hello")
    assert metered.bytes == 1005 and metered.cpu_s >= 0
    assert uri == storage.uri("out/a.bin") and metered.exists("out/b.txt")
    assert sorted(metered.list_keys("out/")) == ["out/a.bin", "out/b.txt"]


def test_cpu_seconds_counts_the_children():
    cpu, result = cpu_seconds(lambda: subprocess.run([sys.executable, "-c", "sum(range(3_000_000))"]).returncode)
    assert result == 0 and cpu > 0.01
