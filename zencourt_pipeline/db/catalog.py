"""The newest-first batch list (`GET /video/batches`), the pages partition retention walks, and
the per-batch facts the list route adds (job counts, workspaces).

`list_batches` pages newest first (`created_at desc, id desc`) by keyset: the cursor is the last
row's (created_at, id), opaque to the caller (base64url of JSON). On SQLite the timestamps are
text, with or without fractional seconds (the server default has none); the cursor and the
comparisons use that stored text, so a cursor matches its row exactly whatever the format.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from zencourt_pipeline.db.core import Db
from zencourt_pipeline.db.records import TERMINAL_STATUSES, Batch, BatchStatus
from zencourt_pipeline.db.schema import video_gen_batch, video_gen_jobs


@dataclass(frozen=True)
class BatchPage:
    batches: list[Batch]
    next_cursor: str | None  # None on the last page


class InvalidCursor(ValueError):
    """A cursor this database did not hand out (garbage, tampered, another format)."""


class BatchCatalog:
    """Reads of many batches at once, paged by keyset."""

    def __init__(self, db: Db):
        self.db = db

    # -- GET /video/batches --------------------------------------------------------------------
    def list_batches(
        self,
        *,
        listing_id: str | None = None,
        workspace_id: str | None = None,
        status: BatchStatus | None = None,
        since: datetime | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> BatchPage:
        """Batches newest first, `limit` per page; `since`: created at or after; `cursor`: the
        `next_cursor` of the previous page (`InvalidCursor` when it is not one)."""
        created = self._time_key()
        batch = video_gen_batch.c
        query = sa.select(video_gen_batch, created.label("_created_key"))
        if listing_id is not None:
            query = query.where(batch.listing_id == listing_id)
        if workspace_id is not None:
            query = query.where(batch.workspace_id == workspace_id)
        if status is not None:
            query = query.where(batch.status == status)
        if since is not None:
            query = query.where(created >= self._time_bound(since))
        if cursor is not None:
            after_created, after_id = self._decode_cursor(cursor)
            query = query.where(sa.or_(created < after_created, sa.and_(created == after_created, batch.id < after_id)))
        query = query.order_by(created.desc(), batch.id.desc()).limit(limit + 1)
        with self.db.engine.connect() as conn:
            rows = conn.execute(query).all()
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = self._encode_cursor(rows[-1]._created_key, rows[-1].id) if more and rows else None
        return BatchPage([Batch.from_row(row) for row in rows], next_cursor)

    # -- partition retention (defs/retention.py) --------------------------------------------------
    def ended_batches(self, before: datetime, cursor: str | None = None, limit: int = 500) -> tuple[list[str], str | None]:
        """Ids of terminal batches last changed before `before`, oldest first, `limit` at most, after
        `cursor`; and the cursor of the last one (the given cursor when there is none). A batch that
        is re-opened (regenerate) and ends again is changed later: it comes again past the cursor."""
        updated = self._time_key(video_gen_batch.c.updated_at)
        batch = video_gen_batch.c
        query = sa.select(batch.id, updated.label("_updated_key")).where(
            batch.status.in_(sorted(str(status) for status in TERMINAL_STATUSES)), updated < self._time_bound(before)
        )
        if cursor is not None:
            after_updated, after_id = self._decode_cursor(cursor)
            query = query.where(sa.or_(updated > after_updated, sa.and_(updated == after_updated, batch.id > after_id)))
        with self.db.engine.connect() as conn:
            rows = conn.execute(query.order_by(updated, batch.id).limit(limit)).all()
        if not rows:
            return [], cursor
        return [row.id for row in rows], self._encode_cursor(rows[-1]._updated_key, rows[-1].id)

    def job_status_counts(self, batch_ids: list[str]) -> dict[str, dict[str, int]]:
        """{batch id: {job status: count}} in one query (the list route's progress)."""
        if not batch_ids:
            return {}
        jobs = video_gen_jobs.c
        query = (
            sa.select(jobs.batch_id, jobs.status, sa.func.count())
            .where(jobs.batch_id.in_(batch_ids))
            .group_by(jobs.batch_id, jobs.status)
        )
        counts: dict[str, dict[str, int]] = {batch_id: {} for batch_id in batch_ids}
        with self.db.engine.connect() as conn:
            for batch_id, status, n in conn.execute(query):
                counts[batch_id][status] = int(n)
        return counts

    def batch_workspaces(self, batch_ids: Iterable[str]) -> dict[str, str | None]:
        """{batch id: its workspace id (None when it has none)} of the batches that exist."""
        ids = sorted(set(batch_ids))
        if not ids:
            return {}
        batch = video_gen_batch.c
        query = sa.select(batch.id, batch.workspace_id).where(batch.id.in_(ids))
        with self.db.engine.connect() as conn:
            return {row.id: row.workspace_id for row in conn.execute(query)}

    # -- keyset helpers ------------------------------------------------------------------------
    def _sqlite(self) -> bool:
        return self.db.engine.dialect.name == "sqlite"

    def _time_key(self, column: sa.Column = video_gen_batch.c.created_at) -> sa.ColumnElement:
        """A timestamp column as pages order it: the stored text on SQLite, the timestamp elsewhere."""
        if self._sqlite():
            return sa.type_coerce(column, sa.Text)
        return column

    def _time_bound(self, value: datetime) -> Any:
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        if self._sqlite():  # stored as naive UTC text; whole seconds compare equal to the default's
            text = value.strftime("%Y-%m-%d %H:%M:%S")
            return text + (f".{value.microsecond:06d}" if value.microsecond else "")
        return value

    def _encode_cursor(self, created: Any, batch_id: str) -> str:
        created_text = created if isinstance(created, str) else created.astimezone(UTC).isoformat()
        raw = json.dumps([created_text, batch_id], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _decode_cursor(self, cursor: str) -> tuple[Any, str]:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            created_text, batch_id = json.loads(raw)
            if not isinstance(created_text, str) or not isinstance(batch_id, str):
                raise ValueError("not a (created_at, id) pair")
            created = datetime.fromisoformat(created_text)
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidCursor("cursor is not one this service handed out") from exc
        if self._sqlite():
            return created_text, batch_id
        return (created if created.tzinfo else created.replace(tzinfo=UTC)), batch_id
