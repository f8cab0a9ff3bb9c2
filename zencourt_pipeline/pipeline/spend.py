"""What we spent on providers: the money ledger as a report (`zencourt spend`), as JSON, and the
status API's `spend` field. Dagster-free; the figures come from `db/spend.py`.

    report = spend_report(db, since=..., listing_id=..., top=10)
    print(format_spend(report))            # a table per provider, the top batches, orphans
    print(format_spend(report, as_json=True))

`run_spend_command` does both for the CLI, from its arguments; `add_spend_parser(subparsers)`
registers `zencourt spend` (its options and handler) on the CLI's argparse subparsers.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from zencourt_pipeline.db.spend import PAID_STATES, BatchSpend, ProviderLedger, SpendLedger

DEFAULT_TOP = 10
# ledger state -> camelCase key (status API and JSON report) and table heading
STATE_KEYS = {
    "created": "inFlight",
    "completed": "completed",
    "failed": "failed",
    "canceled": "canceled",
    "superseded": "superseded",
    "possibly_orphaned": "possiblyOrphaned",
    "other": "other",
    "unpaid": "unpaid",
}
STATE_HEADINGS = {
    "created": "in flight",
    "completed": "completed",
    "failed": "failed",
    "canceled": "canceled",
    "superseded": "superseded",
    "possibly_orphaned": "orphaned?",
    "other": "other",
    "unpaid": "unpaid",
}


@dataclass(frozen=True)
class SpendReport:
    ledger: SpendLedger
    batches: list[BatchSpend]  # the top `top` batches by spend
    batch_count: int  # batches with a paid request (of which `batches` are the first)
    since: datetime | None = None
    until: datetime | None = None
    batch_id: str | None = None
    listing_id: str | None = None


def spend_report(
    db,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    batch_id: str | None = None,
    listing_id: str | None = None,
    top: int = DEFAULT_TOP,
) -> SpendReport:
    """The ledger per provider, the `top` most expensive batches and the orphan count, for
    requests submitted in [since, until), optionally of one batch or listing."""
    filters = {"since": since, "until": until, "batch_id": batch_id, "listing_id": listing_id}
    return SpendReport(
        ledger=db.spend.spend_ledger(**filters),
        batches=db.spend.spend_by_batch(**filters, limit=max(0, top)),
        batch_count=db.spend.count_spending_batches(**filters),
        **filters,
    )


# -- JSON --------------------------------------------------------------------------------------
def provider_json(ledger: ProviderLedger) -> dict[str, Any]:
    """One provider's ledger in the status API's camelCase shape, with a count per ledger state."""
    return {
        "tasks": ledger.tasks,
        "usd": ledger.usd,
        "usdProvider": ledger.usd_provider,
        "usdRate": ledger.usd_rate,
        "unpriced": ledger.unpriced,
        "orphanUsd": ledger.orphan_usd,
        **{STATE_KEYS[state]: ledger.states.get(state, 0) for state in STATE_KEYS},
    }


def ledger_json(ledger: SpendLedger) -> dict[str, Any]:
    """The status API's `spend`: totals, then `byProvider` (camelCase, like the other fields)."""
    return {
        "usd": ledger.usd,
        "tasks": ledger.tasks,
        "possiblyOrphaned": ledger.possibly_orphaned,
        "usdProvider": ledger.usd_provider,
        "usdRate": ledger.usd_rate,
        "unpriced": ledger.unpriced,
        "orphanUsd": ledger.orphan_usd,
        "byProvider": {p.provider: provider_json(p) for p in ledger.providers},
    }


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat().replace("+00:00", "Z")


def report_json(report: SpendReport) -> dict[str, Any]:
    """The `zencourt spend --json` document: window, filters, the ledger, states and the top batches."""
    return {
        "since": _iso(report.since),
        "until": _iso(report.until),
        "batchId": report.batch_id,
        "listingId": report.listing_id,
        **ledger_json(report.ledger),
        "states": {STATE_KEYS[state]: n for state, n in report.ledger.states.items()},
        "batchCount": report.batch_count,
        "topBatches": [
            {
                "batchId": b.batch_id,
                "listingId": b.listing_id,
                "tasks": b.tasks,
                "usd": b.usd,
                "possiblyOrphaned": b.possibly_orphaned,
                "unpriced": b.unpriced,
            }
            for b in report.batches
        ],
    }


# -- the table ----------------------------------------------------------------------------------
def _money(usd: float) -> str:
    return f"${usd:,.4f}"


def _table(headings: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """Columns padded to their widest cell: the first `left` columns left-aligned, the rest right."""
    widths = [max(len(str(row[i])) for row in [headings, *rows]) for i in range(len(headings))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            str(cell).ljust(width) if i < left else str(cell).rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(headings), line(["-" * width for width in widths]), *(line(row) for row in rows)]


def _scope(report: SpendReport) -> str:
    parts = []
    if report.since is not None or report.until is not None:
        window = [f"since {_iso(report.since)}"] if report.since is not None else []
        window += [f"until {_iso(report.until)}"] if report.until is not None else []
        parts.append("submitted " + " ".join(window))
    else:
        parts.append("all time")
    if report.listing_id is not None:
        parts.append(f"listing {report.listing_id}")
    if report.batch_id is not None:
        parts.append(f"batch {report.batch_id}")
    return ", ".join(parts)


def format_spend(report: SpendReport, as_json: bool = False) -> str:
    """The report as a readable text (per provider, top batches, orphans) or as JSON."""
    if as_json:
        return json.dumps(report_json(report), indent=2)
    ledger = report.ledger
    lines = [f"Provider spend ({_scope(report)})", ""]
    states = [*PAID_STATES, "unpaid"]
    headings = ["provider", "tasks", *(STATE_HEADINGS[s] for s in states), "usd provider", "usd rate", "usd total"]

    def row(name: str, tasks: int, counts: dict[str, int], provider: float, rate: float, total: float) -> list[str]:
        return [name, str(tasks), *(str(counts.get(s, 0)) for s in states), _money(provider), _money(rate), _money(total)]

    rows = [row(p.provider, p.tasks, p.states, p.usd_provider, p.usd_rate, p.usd) for p in ledger.providers]
    rows.append(row("total", ledger.tasks, ledger.states, ledger.usd_provider, ledger.usd_rate, ledger.usd))
    lines += _table(headings, rows)
    lines += [
        "",
        "tasks: paid requests (all but unpaid); usd provider: the provider's own figure; usd rate: the",
        "published rate table (providers/rates.py).",
        "",
        f"Possibly orphaned: {ledger.possibly_orphaned} request(s), {_money(ledger.orphan_usd)}"
        + (" (sent, answer lost: check the provider's dashboard)" if ledger.possibly_orphaned else ""),
    ]
    if ledger.unpriced:
        lines.append(f"Unpriced: {ledger.unpriced} paid request(s) without a cost figure (not in the totals)")
    lines.append("")
    if not report.batch_count:
        lines.append("No batch has a paid request.")
        return "\n".join(lines)
    shown = len(report.batches)
    lines.append(f"Top {shown} of {report.batch_count} batch(es) by spend")
    batch_rows = [
        [b.batch_id, b.listing_id or "-", str(b.tasks), str(b.possibly_orphaned), _money(b.usd)] for b in report.batches
    ]
    if batch_rows:
        lines += _table(["batch", "listing", "tasks", "orphaned?", "usd"], batch_rows, left=2)
    return "\n".join(lines)


def spend_markdown(report: SpendReport) -> str:
    """Per provider (and the total): paid tasks, ledger states, USD by cost source; then the
    possibly orphaned count and the top batches. For asset metadata."""
    ledger = report.ledger
    states = [*PAID_STATES, "unpaid"]
    head = ["provider", "tasks", *(STATE_HEADINGS[s] for s in states), "usd provider", "usd rate", "usd"]

    def row(name: str, p: ProviderLedger | SpendLedger) -> str:
        cells = [name, str(p.tasks), *(str(p.states.get(s, 0)) for s in states)]
        cells += [_money(p.usd_provider), _money(p.usd_rate), _money(p.usd)]
        return "| " + " | ".join(cells) + " |"

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [row(p.provider, p) for p in ledger.providers]
    lines += [row("**total**", ledger), ""]
    lines.append(f"Possibly orphaned: **{ledger.possibly_orphaned}** ({_money(ledger.orphan_usd)}); "
                 f"unpriced: {ledger.unpriced}.")
    if report.batches:
        lines += ["", f"Top {len(report.batches)} of {report.batch_count} batches by spend:", "",
                  "| batch | listing | tasks | orphaned? | usd |", "|---|---|---|---|---|"]
        lines += [f"| {b.batch_id} | {b.listing_id or '-'} | {b.tasks} | {b.possibly_orphaned} | {_money(b.usd)} |"
                  for b in report.batches]
    return "\n".join(lines)


def run_spend_command(
    db,
    *,
    days: float | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    batch_id: str | None = None,
    listing_id: str | None = None,
    top: int = DEFAULT_TOP,
    as_json: bool = False,
    now: datetime | None = None,
) -> str:
    """`zencourt spend`: the report's text. `days` (the last N days) is used when `since` is not given."""
    if since is None and days is not None:
        since = (now or datetime.now(UTC)) - timedelta(days=days)
    report = spend_report(db, since=since, until=until, batch_id=batch_id, listing_id=listing_id, top=top)
    return format_spend(report, as_json=as_json)


def _when(value: str) -> datetime:
    """An ISO date or time for --since/--until (naive: UTC)."""
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {value!r}") from exc
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def add_spend_parser(subparsers) -> argparse.ArgumentParser:
    """`zencourt spend`: register the subcommand on the CLI's `add_subparsers()` object."""
    spend = subparsers.add_parser(
        "spend", help="provider spend: the money ledger per provider and batch, possibly orphaned requests"
    )
    window = spend.add_mutually_exclusive_group()
    window.add_argument("--days", type=float, default=None, help="requests submitted in the last N days")
    window.add_argument("--since", type=_when, default=None, help="submitted at or after (ISO, UTC if naive)")
    spend.add_argument("--until", type=_when, default=None, help="submitted before (ISO, UTC if naive)")
    spend.add_argument("--listing", dest="listing_id", default=None, help="only this listing's batches")
    spend.add_argument("--batch", dest="batch_id", default=None, help="only this batch")
    spend.add_argument("--top", type=int, default=DEFAULT_TOP, help="batches to list (most expensive first)")
    spend.add_argument("--json", dest="as_json", action="store_true", help="print JSON")
    spend.set_defaults(func=spend_main)
    return spend


def spend_main(args: argparse.Namespace, db=None) -> int:
    """The handler of `zencourt spend`: the report of the database of `DATABASE_URL` on stdout."""
    own = db is None
    if own:
        from zencourt_pipeline.config import Settings
        from zencourt_pipeline.db.database import AppDatabase

        db = AppDatabase.connect(Settings.from_env().resolved_database_url)
    try:
        text = run_spend_command(
            db,
            days=args.days,
            since=args.since,
            until=args.until,
            batch_id=args.batch_id,
            listing_id=args.listing_id,
            top=args.top,
            as_json=args.as_json,
        )
    finally:
        if own:
            db.db.dispose()
    print(text)
    return 0
