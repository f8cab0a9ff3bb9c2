"""The outputs a batch produced (`video_gen_outputs`, migration 0011): one row per rendition.

Composition hands over what it rendered as `OutputRow`s; `BatchRepository.finish_batch` writes them in
the transaction that completes the batch (they replace the batch's earlier rows: an operator's
re-compose publishes a new set) and puts them in the `batch.completed` webhook (`webhook_fields`).
An output rendered and checked before the others is published on its own first (`publish_output`,
issue 13 point 7: the primary one's `video_gen_batch.video_url` is set while the rest render), with
an `output.completed` batch event; a batch that ends failed or canceled drops such rows.
Reads return `Output` records, in the order the batch asked for them (primary first).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import sqlalchemy as sa

from zencourt_pipeline.db.clock import utcnow
from zencourt_pipeline.db.core import Db
from zencourt_pipeline.db.records import BatchEventType, BatchStatus, Record
from zencourt_pipeline.db.schema import video_gen_batch, video_gen_outputs
from zencourt_pipeline.domain import OutputShape, OutputSpec


class OutputStatus(enum.StrEnum):
    """`video_gen_outputs.status`: the output is published, or it could not be made (`error` says why)."""

    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Output(Record):
    """A `video_gen_outputs` row."""

    _ENUMS: ClassVar[dict[str, type[enum.StrEnum]]] = {"status": OutputStatus, "shape": OutputShape}

    id: int
    batch_id: str
    shape: OutputShape
    width: int
    height: int
    branded: bool
    is_primary: bool = False
    status: OutputStatus = OutputStatus.COMPLETED
    template: str | None = None
    video_url: str | None = None  # the stored URI
    thumbnail_url: str | None = None
    duration_seconds: float | None = None
    size_bytes: int | None = None
    error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    source_resolution: str | None = None  # migration 0015: the clips' size (`WxH`) it was made from

    @property
    def spec(self) -> OutputSpec:
        """The output as asked for."""
        return OutputSpec(shape=self.shape, width=self.width, height=self.height, branded=self.branded)


@dataclass(frozen=True, slots=True)
class OutputRow:
    """One output as composition made it (or failed to): what `finish_batch` writes."""

    spec: OutputSpec
    status: OutputStatus
    primary: bool = False
    template: str | None = None
    video_uri: str | None = None
    thumbnail_uri: str | None = None
    duration_s: float | None = None
    size_bytes: int | None = None
    error: str | None = None
    source_resolution: str | None = None  # the size (`WxH`) of the clips it was made from (None: not made)

    def values(self, batch_id: str, now: datetime) -> dict[str, Any]:
        """The row's column values."""
        return {
            "batch_id": batch_id, "shape": self.spec.shape.value, "width": self.spec.width,
            "height": self.spec.height, "branded": self.spec.branded, "is_primary": self.primary,
            "status": self.status.value, "template": self.template, "video_url": self.video_uri,
            "thumbnail_url": self.thumbnail_uri, "duration_seconds": self.duration_s,
            "size_bytes": self.size_bytes, "error": self.error, "source_resolution": self.source_resolution,
            "created_at": now, "updated_at": now,
        }  # fmt: skip


def webhook_fields(output: OutputRow | Output) -> dict[str, Any]:
    """An output as the webhook and the status API name it (camelCase; the URIs as stored: the
    deliverer and the route resolve them into playable `videoUrl`/`thumbnailUrl`)."""
    if isinstance(output, Output):
        spec, primary, uri, thumb = output.spec, output.is_primary, output.video_url, output.thumbnail_url
        duration, size, status, error = output.duration_seconds, output.size_bytes, output.status, output.error
        source = output.source_resolution
    else:
        spec, primary, uri, thumb = output.spec, output.primary, output.video_uri, output.thumbnail_uri
        duration, size, status, error = output.duration_s, output.size_bytes, output.status, output.error
        source = output.source_resolution
    return {
        "shape": spec.shape.value, "width": spec.width, "height": spec.height, "branded": spec.branded,
        "primary": primary, "status": status.value, "videoUri": uri, "thumbnailUri": thumb,
        "durationSeconds": duration, "bytes": size, "sourceResolution": source, "error": error,
    }  # fmt: skip


def replace_outputs(conn: sa.Connection, batch_id: str, rows: Sequence[OutputRow]) -> None:
    """The batch's outputs become `rows` (inside the caller's transaction)."""
    conn.execute(sa.delete(video_gen_outputs).where(video_gen_outputs.c.batch_id == batch_id))
    if rows:
        now = utcnow()
        conn.execute(sa.insert(video_gen_outputs), [row.values(batch_id, now) for row in rows])


class OutputRepository:
    """The reads of `video_gen_outputs`, and the publication of one output ahead of its batch."""

    def __init__(self, db: Db):
        self.db = db

    def publish_output(self, batch_id: str, row: OutputRow) -> bool:
        """One output, rendered and stored, made public before the batch finishes: its row replaces
        the batch's row of the same output (a re-compose's), the primary one's URLs become the
        batch's `video_url`/`thumbnail_url` (the other rows stop being primary), and an
        `output.completed` event reports it, in one transaction. Refused (False) unless the batch
        is processing, or completed (an operator's re-compose): a canceled or failed batch
        advertises no output."""
        spec = row.spec
        with self.db.transaction() as conn:
            batch = self.db.batch_for_update(conn, batch_id)
            if batch is None or batch.status not in (BatchStatus.PROCESSING, BatchStatus.COMPLETED):
                return False
            c = video_gen_outputs.c
            conn.execute(sa.delete(video_gen_outputs).where(
                c.batch_id == batch_id, c.shape == spec.shape.value, c.width == spec.width, c.height == spec.height,
                c.branded == spec.branded,
            ))  # fmt: skip
            now = utcnow()
            if row.primary:
                conn.execute(sa.update(video_gen_outputs).where(c.batch_id == batch_id).values(is_primary=False))
                conn.execute(
                    sa.update(video_gen_batch).where(video_gen_batch.c.id == batch_id)
                    .values(video_url=row.video_uri, thumbnail_url=row.thumbnail_uri, updated_at=now)
                )  # fmt: skip
            conn.execute(sa.insert(video_gen_outputs).values(row.values(batch_id, now)))
            self.db.record(conn, batch_id, BatchEventType.OUTPUT_COMPLETED, **webhook_fields(row))
        return True

    def get_outputs(self, batch_id: str) -> list[Output]:
        """The batch's outputs in the order they were written (the primary first)."""
        return self.outputs_of([batch_id])[batch_id]

    def outputs_of(self, batch_ids: Sequence[str]) -> dict[str, list[Output]]:
        """Each batch's outputs (the primary first), in one query: batch id -> outputs (none: [])."""
        found: dict[str, list[Output]] = {batch_id: [] for batch_id in batch_ids}
        if not batch_ids:
            return found
        query = (
            sa.select(video_gen_outputs)
            .where(video_gen_outputs.c.batch_id.in_(list(batch_ids)))
            .order_by(video_gen_outputs.c.batch_id, video_gen_outputs.c.is_primary.desc(), video_gen_outputs.c.id)
        )
        with self.db.engine.connect() as conn:
            for row in conn.execute(query):
                output = Output.from_row(row)
                found.setdefault(output.batch_id, []).append(output)
        return found
