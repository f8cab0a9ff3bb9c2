"""`create_batch` (idempotency keys) and `list_batches` (keyset pages), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from zencourt_pipeline.db.batches import CreateOutcome
from zencourt_pipeline.db.catalog import InvalidCursor
from zencourt_pipeline.db.records import BatchStatus
from zencourt_pipeline.db.schema import api_idempotency_keys, video_gen_batch
from zencourt_pipeline_tests.conftest import make_batch

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def count(db, table) -> int:
    with db.db.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()


def test_migration_0006_downgrades_and_upgrades_again(app_db):
    from zencourt_pipeline.db.migrate import current_revision, downgrade, head_revision

    app_db.batches.insert_batch(*make_batch("m1"))
    downgrade(app_db.db.engine, "0005")
    inspector = sa.inspect(app_db.db.engine)
    assert not inspector.has_table("api_idempotency_keys")
    assert "ix_video_gen_batch_created_id" not in {ix["name"] for ix in inspector.get_indexes("video_gen_batch")}
    app_db.db.upgrade()
    assert current_revision(app_db.db.engine) == head_revision() and app_db.batches.get_batch("m1") is not None
    indexes = {ix["name"]: ix["column_names"] for ix in sa.inspect(app_db.db.engine).get_indexes("video_gen_batch")}
    assert indexes["ix_video_gen_batch_created_id"] == ["created_at", "id"]


def test_create_with_key_replays_and_refuses_another_body(app_db):
    batch, jobs = make_batch("k1")
    assert app_db.batches.create_batch(batch, jobs, idempotency_key="key-1", body_sha256="aa").outcome == "created"
    assert [job.id for job in app_db.batches.get_jobs("k1")] == ["k1-0", "k1-1"]
    # a retry: another generated id, same key and body -> the first batch, nothing new written
    other, other_jobs = make_batch("k2")
    replay = app_db.batches.create_batch(other, other_jobs, idempotency_key="key-1", body_sha256="aa")
    assert (replay.outcome, replay.batch_id) == (CreateOutcome.REPLAYED, "k1")
    reused = app_db.batches.create_batch(other, other_jobs, idempotency_key="key-1", body_sha256="bb")
    assert (reused.outcome, reused.batch_id) == (CreateOutcome.KEY_REUSED, "k1")
    assert app_db.batches.get_batch("k2") is None
    assert (count(app_db, video_gen_batch), count(app_db, api_idempotency_keys)) == (1, 1)


def test_create_conflicts_on_a_taken_batch_or_job_id(app_db):
    app_db.batches.insert_batch(*make_batch("c1"))  # the web app's way
    assert app_db.batches.create_batch(*make_batch("c1")).outcome == CreateOutcome.BATCH_EXISTS
    # a new batch id whose job id belongs to c1: the whole create is rolled back, key included
    result = app_db.batches.create_batch(
        {"id": "c2", "listing_id": "L"}, [{"id": "c1-1", "image_url": "https://x/1.jpg"}], idempotency_key="k"
    )
    assert (result.outcome, result.job_ids) == (CreateOutcome.JOB_EXISTS, ["c1-1"])
    assert app_db.batches.get_batch("c2") is None and count(app_db, api_idempotency_keys) == 0


def test_concurrent_creates_with_one_key_make_one_batch(app_db):
    barrier = threading.Barrier(6)
    results = []

    def create(i: int) -> None:
        barrier.wait()
        results.append(app_db.batches.create_batch(*make_batch(f"cc{i}"), idempotency_key="same", body_sha256="d"))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcomes = sorted(result.outcome for result in results)
    assert outcomes == [CreateOutcome.CREATED] + [CreateOutcome.REPLAYED] * 5
    assert len({result.batch_id for result in results}) == 1
    assert count(app_db, video_gen_batch) == 1


def seven_batches(db) -> list[str]:
    """b0..b6, b6 newest; b2 and b3 share a created_at (the id breaks the tie)."""
    times = [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2), T0 + timedelta(seconds=2),
             T0 + timedelta(seconds=3, microseconds=500), T0 + timedelta(minutes=1), T0 + timedelta(hours=1)]  # fmt: skip
    for i, created in enumerate(times):
        listing = "L-even" if i % 2 == 0 else "L-odd"
        db.batches.insert_batch(*make_batch(f"b{i}", n_jobs=1, listing_id=listing, created_at=created))
    return [f"b{i}" for i in reversed(range(7))]


def walk(db, **filters) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = db.catalog.list_batches(cursor=cursor, **filters)
        pages.append([batch.id for batch in page.batches])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor
        assert len(pages) < 20


def test_list_pages_walk_every_batch_once_newest_first(app_db):
    newest_first = seven_batches(app_db)
    assert newest_first == ["b6", "b5", "b4", "b3", "b2", "b1", "b0"]
    pages = walk(app_db, limit=3)
    assert pages == [["b6", "b5", "b4"], ["b3", "b2", "b1"], ["b0"]]
    assert walk(app_db, limit=7) == [newest_first]  # exactly full: no empty extra page
    assert walk(app_db, limit=2)[-1] == ["b0"]


def test_list_mixes_server_default_timestamps(app_db):
    """Rows the web app inserts without created_at (SQLite: whole seconds) page like the others."""
    for i in range(5):
        app_db.batches.insert_batch(*make_batch(f"d{i}", n_jobs=0))
    assert sum(walk(app_db, limit=2), []) == ["d4", "d3", "d2", "d1", "d0"]  # same second: by id


def test_list_filters(app_db):
    seven_batches(app_db)
    assert sum(walk(app_db, limit=2, listing_id="L-odd"), []) == ["b5", "b3", "b1"]
    app_db.batches.start_batch("b4")
    app_db.batches.start_batch("b1")
    assert sum(walk(app_db, limit=1, status=BatchStatus.PROCESSING), []) == ["b4", "b1"]
    since = T0 + timedelta(seconds=2)
    assert [b.id for b in app_db.catalog.list_batches(since=since).batches] == ["b6", "b5", "b4", "b3", "b2"]
    assert [b.id for b in app_db.catalog.list_batches(since=since + timedelta(microseconds=1)).batches] == ["b6", "b5", "b4"]
    assert app_db.catalog.list_batches(listing_id="nobody").batches == []


@pytest.mark.parametrize("cursor", ["", "garbage!", "bm90IGpzb24", "WzEsMl0", "WyJ4IiwiYiJd", "WyIyMDI2Il0"])
def test_list_refuses_a_cursor_it_did_not_hand_out(app_db, cursor):
    with pytest.raises(InvalidCursor):
        app_db.catalog.list_batches(cursor=cursor)


def test_batch_workspaces_of_existing_batches(app_db):
    app_db.batches.insert_batch(*make_batch("w1", workspace_id="ws1"))
    app_db.batches.insert_batch(*make_batch("w2"))
    assert app_db.catalog.batch_workspaces(["w2", "w1", "nope", "w1"]) == {"w1": "ws1", "w2": None}
    assert app_db.catalog.batch_workspaces([]) == {}


# -- partition retention ---------------------------------------------------------------------------
def set_updated(db, batch_id: str, when: datetime) -> None:
    """Move a batch's last change to `when` (as the clock would have written it)."""
    with db.db.transaction() as conn:
        conn.execute(sa.update(video_gen_batch).where(video_gen_batch.c.id == batch_id).values(updated_at=when))


def test_migration_0009_indexes_the_retention_page(app_db):
    from zencourt_pipeline.db.migrate import downgrade

    downgrade(app_db.db.engine, "0008")
    assert "ix_video_gen_batch_updated_id" not in {ix["name"] for ix in sa.inspect(app_db.db.engine).get_indexes("video_gen_batch")}
    app_db.db.upgrade()
    indexes = {ix["name"]: ix["column_names"] for ix in sa.inspect(app_db.db.engine).get_indexes("video_gen_batch")}
    assert indexes["ix_video_gen_batch_updated_id"] == ["updated_at", "id"]


def test_ended_batches_pages_terminal_batches_before_the_cutoff_oldest_first(app_db):
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    for name, status, days_ago in [("old-b", "completed", 40), ("old-a", "failed", 40), ("older", "canceled", 50),
                                   ("open", "processing", 60), ("recent", "completed", 10)]:  # fmt: skip
        app_db.batches.insert_batch(*make_batch(name))
        if status != "processing":
            app_db.batches.start_batch(name)
            app_db.batches.finish_batch(name, status)
        else:
            app_db.batches.start_batch(name)
        set_updated(app_db, name, now - timedelta(days=days_ago))
    cutoff = now - timedelta(days=30)
    first, cursor = app_db.catalog.ended_batches(cutoff, limit=2)
    assert first == ["older", "old-a"]  # oldest change first, id the tiebreak
    second, cursor = app_db.catalog.ended_batches(cutoff, cursor, limit=2)
    assert second == ["old-b"]
    assert app_db.catalog.ended_batches(cutoff, cursor) == ([], cursor)  # nothing new: the cursor stays
    # re-opened and ended again (a regenerate): changed later, so it comes again after the cursor
    set_updated(app_db, "older", now - timedelta(days=35))
    assert app_db.catalog.ended_batches(cutoff, cursor)[0] == ["older"]
    assert app_db.catalog.ended_batches(now, cursor)[0] == ["older", "recent"]  # the open batch never
