"""The notify tests' app database: SQLite in the test's directory."""

from __future__ import annotations

import pytest

from zencourt_pipeline.db.database import AppDatabase


@pytest.fixture
def db(tmp_path):
    database = AppDatabase.connect(f"sqlite:///{tmp_path}/app.db")
    database.db.upgrade()
    yield database
    database.db.dispose()
