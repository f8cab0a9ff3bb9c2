"""The generation concurrency pool comes from the settings given to `build_definitions`, never
from the environment at import; the same configuration keeps the same pool names."""

from __future__ import annotations

import os

import dagster as dg

from zencourt_pipeline.config import Settings
from zencourt_pipeline.definitions import build_definitions


def test_the_generation_pool_comes_from_the_settings_not_the_environment(tmp_path, monkeypatch):
    import subprocess
    import sys

    env = {**os.environ, "GENERATION_PROVIDERS": "fal", "ZENCOURT_DATA_DIR": str(tmp_path / "env-data")}
    imported = subprocess.run(
        [sys.executable, "-c", "from zencourt_pipeline.defs.assets import generation as g; print(g.clip_tasks.op.pool)"],
        env=env, capture_output=True, text=True, check=True,
    )
    assert imported.stdout.strip() == "local_api"  # nothing at import reads the environment

    def pools(defs: dg.Definitions) -> dict[str, str | None]:
        return {key: defs.resolve_assets_def(key).op.pool for key in ("clip_tasks", "generated_clips")}

    assert pools(build_definitions(Settings(data_dir=tmp_path / "data"))) == {"clip_tasks": "local_api", "generated_clips": "local_api"}
    runway = Settings(data_dir=tmp_path / "data", generation_providers=["runway", "fal"])
    assert pools(build_definitions(runway)) == {"clip_tasks": "runway_api", "generated_clips": "runway_api"}
    # from the environment, as the code location reads it: the same pool names as before
    monkeypatch.setenv("GENERATION_PROVIDERS", "fal")
    monkeypatch.setenv("ZENCOURT_DATA_DIR", str(tmp_path / "env-data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert pools(build_definitions(Settings.from_env())) == {"clip_tasks": "fal_api", "generated_clips": "fal_api"}
