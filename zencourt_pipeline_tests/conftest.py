"""Shared fixtures: databases (SQLite file and a real PostgreSQL database created per test
module and dropped after), local storage, and a sample batch built from the packaged photos."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from _pytest.nodeid import NodeId  # pytest 9's node id (see pytest_collection_modifyitems)

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.storage.local import LocalStorage

POSTGRES_ADMIN_URL = os.environ.get("ZENCOURT_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(autouse=True)
def _package_logger_restored():
    """A test that runs Dagster in-process with `managed_python_loggers` (or installs the package
    handler) changes the `zencourt_pipeline` logger's level and handlers: put them back."""
    package = logging.getLogger("zencourt_pipeline")
    level, handlers = package.level, list(package.handlers)
    yield
    package.setLevel(level)
    package.handlers[:] = handlers


def _admin_engine() -> sa.Engine:
    return sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture
def postgres_database():
    """A factory of fresh databases on the real server; all dropped when the test ends."""
    admin = _admin_engine()
    names: list[str] = []

    def create() -> str:
        name = f"zc_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        names.append(name)
        return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"

    try:
        yield create
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_database):
    """A fresh database on the real server; dropped when the test ends."""
    return postgres_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'app.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def app_db(request, tmp_path: Path):
    """The application database on SQLite and on the real PostgreSQL server."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    db = AppDatabase.connect(url)
    db.db.upgrade()
    yield db
    db.db.dispose()


@pytest.fixture
def sqlite_db(sqlite_url: str):
    db = AppDatabase.connect(sqlite_url)
    db.db.upgrade()
    yield db
    db.db.dispose()


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage")


def make_batch(batch_id: str, n_jobs: int = 2, **batch_fields) -> tuple[dict, list[dict]]:
    batch = {"id": batch_id, "listing_id": f"listing-{batch_id}", **batch_fields}
    jobs = [
        {"id": f"{batch_id}-{i}", "sort_order": i, "room_name": f"Room {i}", "image_url": f"https://example.com/{i}.jpg"}
        for i in range(n_jobs)
    ]
    return batch, jobs


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`make test` runs two workers) the tests that start a whole production
    topology (daemon, code server, webserver, service) share one xdist group, so two of them never
    compete for the 2 cores at once.

    pytest-xdist 3.8.0 marks a group by setting `item._nodeid`, which pytest 9 no longer reads (the
    node id is `item._id`, a NodeId), so no group was ever applied and the topologies ran two at a
    time. This hook runs after xdist's and gives each grouped item the `@group` suffix itself."""
    loadgroup = bool(getattr(config.option, "loadgroup", False))
    for item in items:
        if item.get_closest_marker("postgres") and item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.xdist_group("topology"))
        if not loadgroup:
            continue
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        suffix = "@" + "_".join(names)
        if names and not item.nodeid.endswith(suffix):
            item._id = NodeId.parse(item.nodeid + suffix)
