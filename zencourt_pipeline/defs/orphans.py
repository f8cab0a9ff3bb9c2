"""Runs whose worker died with its code server: failed, so that their batch goes on.

A run worker of the default run launcher is a child of the code server that launched it. When the
worker alone dies, that server reports the run failed; when the code server itself is killed
(the machine restarts it, a deploy, an OOM kill), its workers go with it and nobody reports
anything: the runs stay STARTED forever, holding their pool slots (`runway_api`, `fal_api`) and
run-queue places, and every later batch waits behind them. Run monitoring cannot tell: the default
run launcher does not support worker health checks.

`orphaned_runs_sensor` asks the code server named in each in-progress run's `grpc_info` tag
whether it still runs it. A run the server does not know (on two checks `ORPHAN_CONFIRM_S` apart)
and that wrote no event for `ORPHAN_SILENCE_S` is reported failed: its pool slots free after
`run_monitoring.free_slots_after_run_end_seconds`, the intake failure sensor or the completions
sensor gives its batch a new attempt (an interrupted run: `RunEnd.INTERRUPTED`). A server that
cannot be reached (down, restarting) decides nothing.
"""

from __future__ import annotations

import json
import time

import dagster as dg

ORPHAN_CONFIRM_S = 30.0
ORPHAN_SILENCE_S = 90.0
GRPC_INFO_TAG = ".dagster/grpc_info"
IN_PROGRESS = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def launcher_runs_it(run: dg.DagsterRun) -> bool | None:
    """Whether the code server that launched `run` still executes it; None when it cannot tell
    (no grpc_info tag, the server does not answer)."""
    from dagster._grpc.client import DagsterGrpcClient
    from dagster._grpc.types import CanCancelExecutionRequest, CanCancelExecutionResult
    from dagster._serdes import deserialize_value

    info = run.tags.get(GRPC_INFO_TAG)
    if not info:
        return None
    try:
        address = json.loads(info)
        client = DagsterGrpcClient(port=address.get("port"), socket=address.get("socket"), host=address.get("host"))
        answer = client.can_cancel_execution(CanCancelExecutionRequest(run_id=run.run_id), timeout=10)
        return deserialize_value(answer, CanCancelExecutionResult).can_cancel
    except Exception:  # noqa: BLE001 - a server that cannot answer decides nothing
        return None


def last_event_age(instance: dg.DagsterInstance, run_id: str, now: float) -> float:
    """Seconds since the run's last event (its start when it has none)."""
    records = instance.get_records_for_run(run_id, ascending=False, limit=1).records
    return now - records[0].event_log_entry.timestamp if records else float("inf")


def find_orphans(
    instance: dg.DagsterInstance, suspects: dict[str, float], now: float, runs_it=None
) -> tuple[list[dg.DagsterRun], dict[str, float]]:
    """The in-progress runs to fail now, and the suspects to check again (run id -> first seen
    unknown to its server); `runs_it`: the server's answer (`launcher_runs_it` by default)."""
    runs_it = runs_it or launcher_runs_it
    orphans, still = [], {}
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS), limit=200):
        if runs_it(run) is not False:
            continue
        first = suspects.get(run.run_id, now)
        confirmed = now - first >= ORPHAN_CONFIRM_S
        if confirmed and last_event_age(instance, run.run_id, now) >= ORPHAN_SILENCE_S:
            orphans.append(run)
        else:
            still[run.run_id] = first
    return orphans, still


@dg.sensor(
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Fails in-progress runs that the code server which launched them no longer runs (it was killed with "
        "its run workers), after two checks and a silence: their pool slots free and their batch gets a new attempt."
    ),
)
def orphaned_runs_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Report runs whose worker died with its code server as failed."""
    suspects = json.loads(context.cursor) if context.cursor else {}
    orphans, still = find_orphans(context.instance, suspects, time.time())
    for run in orphans:
        message = "its run worker is gone: the code server that launched it no longer runs it (it was restarted)"
        context.instance.report_engine_event(message, run)
        context.instance.report_run_failed(run, message)
        context.log.warning("run %s of %s failed: %s", run.run_id, run.tags.get("zencourt/batch_id"), message)
    summary = f"{len(orphans)} orphaned run(s) failed, {len(still)} suspect(s) to check again"
    return dg.SensorResult(cursor=json.dumps(still), skip_reason=None if orphans else summary)
