"""`zencourt spend`'s report (pipeline/spend.py): the text table, the JSON, the filters it passes on."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from zencourt_pipeline.db.schema import generation_tasks
from zencourt_pipeline.db.spend import LEDGER_STATES, BatchSpend, ProviderLedger, SpendLedger
from zencourt_pipeline.pipeline.spend import (
    SpendReport,
    format_spend,
    ledger_json,
    run_spend_command,
    spend_report,
)
from zencourt_pipeline_tests.conftest import make_batch


def _states(**counts) -> dict[str, int]:
    return {state: counts.get(state, 0) for state in LEDGER_STATES}


LEDGER = SpendLedger(
    (
        ProviderLedger("fal", _states(canceled=1, possibly_orphaned=1, unpaid=2), 0.0, 0.5, unpriced=1),
        ProviderLedger("runway", _states(completed=3, created=1, superseded=1), 0.5, 1.25, orphan_usd=0.0),
    )
)
REPORT = SpendReport(
    ledger=LEDGER,
    batches=[BatchSpend("b-big", "L1", 4, 1.5, 0, 0), BatchSpend("b-orphan", None, 2, 0.5, 1, 1)],
    batch_count=3,
    since=datetime(2026, 5, 1, tzinfo=UTC),
    listing_id="L1",
)

EXPECTED_TEXT = """\
Provider spend (submitted since 2026-05-01T00:00:00Z, listing L1)

provider  tasks  in flight  completed  failed  canceled  superseded  orphaned?  other  unpaid  usd provider  usd rate  usd total
--------  -----  ---------  ---------  ------  --------  ----------  ---------  -----  ------  ------------  --------  ---------
fal           2          0          0       0         1           0          1      0       2       $0.0000   $0.5000    $0.5000
runway        5          1          3       0         0           1          0      0       0       $0.5000   $1.2500    $1.7500
total         7          1          3       0         1           1          1      0       2       $0.5000   $1.7500    $2.2500

tasks: paid requests (all but unpaid); usd provider: the provider's own figure; usd rate: the
published rate table (providers/rates.py).

Possibly orphaned: 1 request(s), $0.0000 (sent, answer lost: check the provider's dashboard)
Unpriced: 1 paid request(s) without a cost figure (not in the totals)

Top 2 of 3 batch(es) by spend
batch     listing  tasks  orphaned?      usd
--------  -------  -----  ---------  -------
b-big     L1           4          0  $1.5000
b-orphan  -            2          1  $0.5000"""


def test_the_table_per_provider_top_batches_and_orphans():
    assert format_spend(REPORT) == EXPECTED_TEXT


def test_an_empty_report_says_so():
    text = format_spend(SpendReport(SpendLedger(), [], 0))
    assert text.startswith("Provider spend (all time)\n")
    assert "total         0" in text and "Possibly orphaned: 0 request(s), $0.0000\n" in text
    assert text.endswith("No batch has a paid request.") and "Unpriced" not in text


def test_the_json_report():
    data = json.loads(format_spend(REPORT, as_json=True))
    assert (data["since"], data["until"], data["listingId"], data["batchId"]) == (
        "2026-05-01T00:00:00Z", None, "L1", None,
    )  # fmt: skip
    assert (data["usd"], data["tasks"], data["possiblyOrphaned"], data["usdProvider"], data["usdRate"]) == (
        2.25, 7, 1, 0.5, 1.75,
    )  # fmt: skip
    assert (data["unpriced"], data["orphanUsd"], data["batchCount"]) == (1, 0.0, 3)
    assert data["states"] == {
        "inFlight": 1, "completed": 3, "failed": 0, "canceled": 1, "superseded": 1,
        "possiblyOrphaned": 1, "other": 0, "unpaid": 2,
    }  # fmt: skip
    assert data["byProvider"]["runway"] == {
        "tasks": 5, "usd": 1.75, "usdProvider": 0.5, "usdRate": 1.25, "unpriced": 0, "orphanUsd": 0.0,
        "inFlight": 1, "completed": 3, "failed": 0, "canceled": 0, "superseded": 1, "possiblyOrphaned": 0,
        "other": 0, "unpaid": 0,
    }  # fmt: skip
    assert data["topBatches"][1] == {
        "batchId": "b-orphan", "listingId": None, "tasks": 2, "usd": 0.5, "possiblyOrphaned": 1, "unpriced": 1,
    }  # fmt: skip
    assert ledger_json(LEDGER) == {key: data[key] for key in ledger_json(LEDGER)}


def _task(db, job_id, provider, task_id, status, usd, *, orphan=False, at=None):
    row = db.ledger.begin_task(job_id, job_id.rsplit("-", 1)[0], provider)
    if task_id:
        db.ledger.task_submitted(row, job_id, provider, task_id, cost_usd=usd, cost_source="rate")
    values = {"status": status, "possibly_orphaned": orphan}
    if at is not None:
        values["submitted_at"] = at
    with db.db.transaction() as conn:
        conn.execute(sa.update(generation_tasks).where(generation_tasks.c.id == row).values(**values))


def test_the_command_reads_the_ledger_with_its_filters(sqlite_db):
    now = datetime(2026, 5, 20, 12, tzinfo=UTC)
    sqlite_db.batches.insert_batch(*make_batch("c1", n_jobs=2, listing_id="L1"))
    sqlite_db.batches.insert_batch(*make_batch("c2", n_jobs=1, listing_id="L2"))
    _task(sqlite_db, "c1-0", "runway", "rw-1", "succeeded", 0.25, at=now - timedelta(days=1))
    _task(sqlite_db, "c1-1", "fal", None, "submitting", None, orphan=True, at=now - timedelta(days=1))
    _task(sqlite_db, "c2-0", "runway", "rw-2", "succeeded", 1.0, at=now - timedelta(days=30))

    everything = json.loads(run_spend_command(sqlite_db, as_json=True))
    assert (everything["tasks"], everything["usd"], everything["possiblyOrphaned"]) == (3, 1.25, 1)
    assert [b["batchId"] for b in everything["topBatches"]] == ["c2", "c1"]

    week = json.loads(run_spend_command(sqlite_db, days=7, now=now, as_json=True))
    assert week["since"] == "2026-05-13T12:00:00Z"
    assert (week["tasks"], week["usd"], week["batchCount"], week["byProvider"]["runway"]["tasks"]) == (2, 0.25, 1, 1)

    top = spend_report(sqlite_db, top=1)
    assert [b.batch_id for b in top.batches] == ["c2"] and top.batch_count == 2
    listing = run_spend_command(sqlite_db, listing_id="L2")
    assert listing.startswith("Provider spend (all time, listing L2)")
    assert "Top 1 of 1 batch(es) by spend" in listing and "c2     L2" in listing
    assert "Possibly orphaned: 0 request(s)" in listing
    batch = spend_report(sqlite_db, batch_id="c1", until=now)
    assert (batch.ledger.tasks, batch.ledger.possibly_orphaned, batch.ledger.usd) == (2, 1, 0.25)


def test_the_spend_subcommand_parses_its_options_and_prints(monkeypatch, tmp_path, sqlite_db, sqlite_url, capsys):
    import argparse

    import pytest

    from zencourt_pipeline.pipeline.spend import add_spend_parser

    parser = argparse.ArgumentParser(prog="zencourt")
    add_spend_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["spend", "--since", "2026-05-01", "--until", "2026-06-01T00:00:00Z", "--json",
                              "--listing", "L1", "--top", "3"])
    assert (args.since, args.until) == (datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC))
    assert (args.listing_id, args.batch_id, args.top, args.as_json, args.days) == ("L1", None, 3, True, None)
    with pytest.raises(SystemExit):
        parser.parse_args(["spend", "--days", "7", "--since", "2026-05-01"])  # one window only
    with pytest.raises(SystemExit):
        parser.parse_args(["spend", "--since", "yesterday"])

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("ZENCOURT_DATA_DIR", str(tmp_path))
    sqlite_db.batches.insert_batch(*make_batch("p1", n_jobs=1, listing_id="L1"))
    _task(sqlite_db, "p1-0", "fal", "fal-p1", "succeeded", 0.5, at=datetime(2026, 5, 2, tzinfo=UTC))
    assert args.func(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["since"], data["until"], data["usd"], data["tasks"]) == (
        "2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z", 0.5, 1,
    )  # fmt: skip
    assert args.func(parser.parse_args(["spend", "--batch", "p1"])) == 0
    assert "Top 1 of 1 batch(es) by spend" in capsys.readouterr().out
