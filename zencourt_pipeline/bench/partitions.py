"""Bounded partitions over a simulated year (issue 13 point 4).

Day by day, `per_day` batches end (rows in a fresh PostgreSQL database, created and dropped here)
and get their partition in a Dagster instance; the retention sensor's body (`prune_request`,
30 days) ticks until it has nothing left for the day, and its delete requests are applied as the
daemon applies them (one `delete_dynamic_partition` per key). The instance is Dagster's ephemeral
one (in-memory SQLite): deletes cost ~0.5 ms there against ~13 ms on a file-backed SQLite
instance, which only changes how long the bench takes, not the counts.

The asset page is then queried on a file-backed test instance holding the same keys (a webserver
cannot run on the ephemeral one). Figures: the partition count after the year, the count without retention (every batch's), the
sensor's median tick while it prunes, and the asset page's GraphQL query (the partitions of
`composed_video`: keys, statuses, stats) at both counts, through a webserver app over this code
location: the ratio is what retention saves each time an operator opens the page.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from zencourt_pipeline.config import BenchSettings
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.schema import video_gen_batch

ASSET_PAGE_QUERY = """
query AssetPartitions {
  assetNodeOrError(assetKey: {path: ["composed_video"]}) {
    __typename
    ... on AssetNode {
      partitionKeysByDimension { name partitionKeys }
      partitionStats { numMaterialized numMaterializing numPartitions numFailed }
      assetPartitionStatuses {
        __typename
        ... on DefaultPartitionStatuses { materializedPartitions failedPartitions unmaterializedPartitions }
      }
    }
  }
}
"""


@dataclass(frozen=True)
class RetentionFigures:
    partitions_after: int  # partitions left after the simulated period, under the policy
    partitions_unbounded: int  # what one partition per batch, never pruned, would be
    median_tick_s: float  # the retention sensor's median tick that pruned something
    page_query_s: float  # the asset page's GraphQL query at `partitions_after`
    page_query_unbounded_s: float  # the same at `partitions_unbounded`


@contextmanager
def scratch_postgres() -> Iterator[str]:
    """The URL of a fresh PostgreSQL database on ZENCOURT_BENCH_POSTGRES_URL's server, dropped afterwards."""
    admin_url = BenchSettings.from_env().postgres_url
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"zc_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _end_batches(db: AppDatabase, day: int, per_day: int, when: datetime) -> list[str]:
    """`per_day` batches that ended at `when` (rows as the pipeline leaves them); their ids."""
    ids = [f"y{day:03d}-{i:05d}" for i in range(per_day)]
    rows = [{"id": batch_id, "listing_id": f"L-{i % 700}", "status": "completed", "created_at": when - timedelta(hours=1),
             "updated_at": when} for i, batch_id in enumerate(ids)]  # fmt: skip
    with db.db.transaction() as conn:
        conn.execute(sa.insert(video_gen_batch), rows)
    return ids


def simulate_year(instance, db: AppDatabase, *, days: int, per_day: int, retention_days: int) -> tuple[int, float]:
    """Run the simulation on `instance` and `db`; (partitions left, median pruning tick seconds)."""
    from zencourt_pipeline.defs.partitions import batch_partitions
    from zencourt_pipeline.defs.retention import prune_request

    start = datetime(2026, 1, 1, tzinfo=UTC)
    cursor: str | None = None
    ticks: list[float] = []
    for day in range(days):
        ended = start + timedelta(days=day, hours=12)
        instance.add_dynamic_partitions(batch_partitions.name, _end_batches(db, day, per_day, ended))
        while True:  # the day's ticks (every 5 min in production): until one finds nothing due
            began = time.perf_counter()
            result = prune_request(db, retention_days, cursor, ended + timedelta(hours=11))
            elapsed = time.perf_counter() - began
            if not result.dynamic_partitions_requests:
                break
            ticks.append(elapsed)
            cursor = result.cursor
            for request in result.dynamic_partitions_requests:
                for key in request.partition_keys:
                    instance.delete_dynamic_partition(request.partitions_def_name, key)
    return len(instance.get_dynamic_partitions(batch_partitions.name)), statistics.median(ticks) if ticks else 0.0


def asset_page_query_s(instance, repeats: int = 3) -> float:
    """Median seconds of the asset page's partitions query, through a webserver app over the code location."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster_webserver.app import create_app_from_workspace_process_context
    from fastapi.testclient import TestClient

    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="zencourt_pipeline.definitions", attribute="defs"), location_name="zencourt_pipeline"
    )
    times = []
    with WorkspaceProcessContext(instance, InProcessTestWorkspaceLoadTarget(origin)) as context:
        with TestClient(create_app_from_workspace_process_context(context)) as web:
            for _ in range(repeats + 1):  # the first one warms the location's caches up
                began = time.perf_counter()
                answer = web.post("/graphql", json={"query": ASSET_PAGE_QUERY})
                times.append(time.perf_counter() - began)
                node = answer.json()["data"]["assetNodeOrError"]
                assert node["__typename"] == "AssetNode", answer.text[:300]
    return statistics.median(times[1:])


def retention_figures(*, days: int, per_day: int, retention_days: int) -> RetentionFigures:
    """The year under the policy, then the asset page at the retained and at the unbounded count."""
    import dagster as dg

    from zencourt_pipeline.defs.partitions import batch_partitions

    with scratch_postgres() as url:
        db = AppDatabase.connect(url)
        db.db.upgrade()
        try:
            with dg.DagsterInstance.ephemeral() as instance:
                left, tick = simulate_year(instance, db, days=days, per_day=per_day, retention_days=retention_days)
                kept = instance.get_dynamic_partitions(batch_partitions.name)
        finally:
            db.db.dispose()
    everyone = [f"y{day:03d}-{i:05d}" for day in range(days) for i in range(per_day)]
    pages = []
    for keys in (kept, everyone):  # the webserver needs an instance on disk: the same keys, added in bulk
        with dg.instance_for_test() as instance:
            for begin in range(0, len(keys), 20_000):
                instance.add_dynamic_partitions(batch_partitions.name, keys[begin : begin + 20_000])
            pages.append(asset_page_query_s(instance))
    return RetentionFigures(left, len(everyone), tick, pages[0], pages[1])
