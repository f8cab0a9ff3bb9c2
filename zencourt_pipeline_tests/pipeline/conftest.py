import pytest

from zencourt_pipeline.config import Settings
from zencourt_pipeline.defs.resources import build_resources


@pytest.fixture
def stack(tmp_path):
    """(database, storage, generators) built from embedded settings, as the definitions build them;
    downloads may reach 127.0.0.1 (the tests' local servers)."""
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'app.db'}",
                        media_allowed_private_hosts=["127.0.0.1"])  # fmt: skip
    resources = build_resources(settings)
    db, storage = resources["app_db"].get(), resources["storage"].get()
    db.db.upgrade()
    return db, storage, resources["generators"]
