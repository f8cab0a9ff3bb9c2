from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from zencourt_pipeline.config import Settings
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.defs.resources import build_resources
from zencourt_pipeline_tests.batches import ONE_OUTPUT_JSON


@pytest.fixture
def sqlite_url(sqlite_url: str) -> str:
    """The SQLite database the resources here are built over, at the latest revision: as start-up
    (`zencourt db upgrade`, `zencourt serve`, `zencourt demo`) leaves it. Resources never migrate."""
    db = AppDatabase.connect(sqlite_url)
    db.db.upgrade()
    db.db.dispose()
    return sqlite_url


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=sqlite_url)


@pytest.fixture
def resources(settings: Settings):
    return build_resources(settings)


def write_photo(path: Path, size=(960, 640), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    gradient = np.linspace(40, 200, size[0], dtype=np.float32)[None, :, None]
    pixels = np.clip(gradient + rng.normal(0, 25, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return path


def insert_batch_with_photos(db, storage, tmp_path: Path, batch_id: str, photos: list[bytes | None], **batch_fields):
    """Photos go to storage as the web app's uploads would; bytes given are stored as they are. The
    batch asks for one 720p output unless `outputs` is given (`zencourt_pipeline_tests.batches`)."""
    jobs = []
    for index, content in enumerate(photos):
        key = f"uploads/{batch_id}/{index}.jpg"
        if content is None:
            storage.put_file(key, write_photo(tmp_path / f"{batch_id}-{index}.jpg", seed=index))
        else:
            storage.put_bytes(key, content)
        jobs.append(
            {
                "id": f"{batch_id}-{index}",
                "sort_order": index,
                "room_name": f"Room {index}",
                "image_url": storage.uri(key),
                "duration_seconds": 2,
            }
        )
    batch_fields.setdefault("outputs", ONE_OUTPUT_JSON)  # `outputs=None`: the default four
    db.batches.insert_batch({"id": batch_id, "listing_id": "L-1", "title": "1 Test Street", **batch_fields}, jobs)
    return jobs


@pytest.fixture
def generator_calls(monkeypatch):
    """Every call to the local generator's `submit` (the one place a clip is generated), by job id."""
    from zencourt_pipeline.providers.local import LocalGenerator

    calls: list[str] = []
    original = LocalGenerator.submit

    def counting_submit(self, request):
        calls.append(request.job_id)
        return original(self, request)

    monkeypatch.setattr(LocalGenerator, "submit", counting_submit)
    return calls


def solid_jpeg(color=(0, 0, 0), size=(960, 640)) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()
