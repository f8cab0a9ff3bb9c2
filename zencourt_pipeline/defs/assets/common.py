"""What the batch assets share: loading the partition's batch, a scratch dir, metadata tables."""

from __future__ import annotations

import base64
import io
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path

import dagster as dg

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import Batch, Job

OWNERS = ["team:media-pipeline"]
STEP_RETRY = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
# Backfill policy of the batch assets: one run per batch partition, which is Dagster's behaviour
# for an asset without `backfill_policy` (= BackfillPolicy.multi_run(max_partitions_per_run=1)).
# Each batch is its own unit of work (its database rows, storage prefix, provider tasks), a failure
# stays in its batch and the UI shows one run per partition; `single_run` would put many batches in
# one run. It is left implicit because `backfill_policy=` on @asset is still beta in Dagster 1.13.


def load_batch(context: dg.AssetExecutionContext, db: AppDatabase) -> tuple[Batch, list[Job]]:
    """The partition's batch and jobs; a batch missing from the database fails the step for good."""
    batch_id = context.partition_key
    batch = db.batches.get_batch(batch_id)
    if batch is None:
        raise dg.Failure(f"batch {batch_id!r} is not in the application database", allow_retries=False)
    return batch, db.batches.get_jobs(batch_id)


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary working directory, deleted when the block ends."""
    with tempfile.TemporaryDirectory(prefix=f"zencourt-{prefix}-") as tmp:
        yield Path(tmp)


def _cell(value):
    if isinstance(value, str):
        return str(value)  # an ErrorCode or status member: its plain string
    if value is None or isinstance(value, (int, float, bool)):
        return value
    return str(value)


def table(rows: Sequence) -> dg.MetadataValue:
    """A table metadata value from dataclass rows (every field a column but the stage's local files,
    fields marked `pipeline.results.NOT_A_COLUMN`)."""
    if not rows:
        return dg.MetadataValue.md("_no rows_")
    first = rows[0]
    names = [f.name for f in fields(first) if f.metadata.get("table_column", True)] if is_dataclass(first) else list(first)
    records = [
        dg.TableRecord({name: _cell(value) for name, value in (asdict(row) if is_dataclass(row) else row).items() if name in names})
        for row in rows
    ]
    columns = []
    for name in names:
        sample = next((r.data[name] for r in records if r.data.get(name) is not None), "")
        kind = "int" if isinstance(sample, int) and not isinstance(sample, bool) else (
            "float" if isinstance(sample, float) else ("bool" if isinstance(sample, bool) else "string")
        )
        columns.append(dg.TableColumn(name, kind))
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns=columns))


def count(items: Sequence, status: str) -> int:
    """How many items have this status."""
    return sum(1 for item in items if getattr(item, "status", None) == status)


def image_markdown(source: Path | bytes, *, alt: str, width: int = 480, quality: int = 80) -> str:
    """A markdown image with an embedded JPEG (data URI), downscaled to `width` px: the Dagster UI
    renders it in the metadata's markdown view, with no file server involved."""
    from PIL import Image

    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")
        if img.width > width:
            img = img.resize((width, max(1, round(img.height * width / img.width))), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=quality, optimize=True)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"![{alt}](data:image/jpeg;base64,{encoded})"


def png_markdown(data: bytes, *, alt: str) -> str:
    """Markdown that shows PNG bytes inline as a data URI image."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(data).decode()})"
