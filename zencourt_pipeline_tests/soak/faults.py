"""The seeded fault schedule of the soak: each fault a small function of the running context.

`build_schedule(rng, config, plans)` draws one event of every kind (and `extra_faults` more) at
random moments of the fault window; `soak.scheduler.Scheduler` applies them at their time. Applying a fault only
arms it: a fault counts when it HIT, read afterwards from what the fakes, the storage proxy, the
receiver and the processes record (`HITS`). A fault that cannot be applied raises `Skip` with its
reason; anything else it raises is a skip without a stated reason, which the soak reports as a
violation. Fal webhook faults (dropped, duplicate, late) and Runway's broken outputs (truncated,
not MP4) are per request: the scripts of the plan decide them (`SCRIPT_KINDS`), and the late
deliveries are sent by `soak.scheduler.LateWebhooks`.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa

from zencourt_pipeline_tests.soak.context import (
    BatchPlan,
    CancelRecord,
    SoakConfig,
    SoakContext,
    job_of_prompt,
)


@dataclass
class FaultEvent:
    at: float
    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"t={self.at:6.1f}s {self.kind} {args}".rstrip()


class Skip(Exception):  # noqa: N818 - a fault that could not be applied, with its reason
    """The fault could not be applied now; the message says why (counted as a stated skip)."""


# -- provider faults ---------------------------------------------------------------------------
def runway_429_storm(ctx: SoakContext, n: int) -> bool:
    ctx.runway.fail_next_creates(n, status=429)
    ctx.runway.fail_next_gets(max(1, n // 2), status=429)
    return True


def runway_5xx_storm(ctx: SoakContext, n: int) -> bool:
    # a 5xx to a create is ambiguous to the client (it may have created the task): each one
    # fails its job PROVIDER_ANSWER_LOST, so the storm is mostly on the (retried) task GETs
    ctx.runway.fail_next_creates(max(1, n // 3), status=503)
    ctx.runway.fail_next_gets(n, status=502)
    return True


def fal_5xx_storm(ctx: SoakContext, n: int) -> bool:
    ctx.fal.status_faults.extend([503] * n)
    return True


def ambiguous_create_runway(ctx: SoakContext, n: int) -> bool:
    ctx.runway.drop_answer_next_creates(n)
    return True


def ambiguous_create_fal(ctx: SoakContext, n: int) -> bool:
    ctx.fal.drop_answer_next_submits(n)
    return True


def late_create_answer(ctx: SoakContext, n: int, delay: float) -> bool:
    ctx.runway.answer_late_next_creates(n, delay)
    ctx.fal.answer_late_next_submits(n, delay)
    return True


def expired_outputs(ctx: SoakContext) -> bool:
    """Every output URL handed out so far expires, and so does the next one each fake hands out
    (expiring only the URLs issued so far is a no-op when none is waiting for its download)."""
    for fake in (ctx.runway, ctx.fal):
        fake.expire_outputs(next_outputs=1)
    return True


def duplicate_create_answer(ctx: SoakContext, n: int) -> bool:
    """Runway answers a create with the task id an earlier create got: the job's own task is
    unknown (an ambiguous create: counted, never re-sent), the earlier job keeps its task."""
    ctx.runway.replay_answer_next_creates(n)
    return True


def fal_webhook_before_answer(ctx: SoakContext, n: int, max_wait: float) -> bool:
    """The next n fal submits whose webhook will come are answered only after it was delivered
    (at most `max_wait` s, within the client's read timeout): the webhook arrives before the
    client knows the request (reordered); the completion waits for its task. Submits the fault
    cannot hit (a held, lost or slow request) pass by, so an armed fault waits for one it can."""
    ctx.fal.reorder_next_submits(n, max_wait)
    return True


def short_body_downloads(ctx: SoakContext, n: int) -> bool:
    """The next n output downloads stop short of their Content-Length (a cut transfer): the paid
    output is downloaded again, never generated again."""
    for fake in (ctx.runway, ctx.fal):
        fake.fail_next_downloads(n, status="short_body")
    return True


def provider_download_failures(ctx: SoakContext, n: int) -> bool:
    for fake in (ctx.runway, ctx.fal):
        fake.fail_next_downloads(n, status=503)
    return True


# -- infrastructure faults ---------------------------------------------------------------------
def storage_503(ctx: SoakContext, share: float, seconds: float) -> bool:
    ctx.proxy.fail(share, seconds)
    return True


def storage_down(ctx: SoakContext, seconds: float) -> bool:
    """The storage is down for `seconds`: every request (bucket calls too) answers 503."""
    ctx.proxy.down(seconds)
    return True


def slow_storage(ctx: SoakContext, delay: float, seconds: float) -> bool:
    """The storage answers every object request `delay` s late for `seconds`."""
    ctx.proxy.slow(delay, seconds)
    return True


def db_restart(ctx: SoakContext) -> bool:
    """The database goes away under every process: a real restart of the soak's own cluster
    (`restart`), or every connection of the soak's databases terminated (`terminate`)."""
    ctx.disruptions.append(time.time())
    if ctx.cluster is not None:
        ctx.cluster.restart()
        ctx.extra["db_restarts_real"] += 1
        return True
    names = ", ".join(f"'{name}'" for name in ctx.db_names)
    with ctx.admin.connect() as conn:
        killed = conn.execute(sa.text(
            f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname IN ({names}) "
            "AND pid <> pg_backend_pid()")).scalar()
    ctx.extra["db_connections_terminated"] += int(killed or 0)
    return True


def kill_run_workers(ctx: SoakContext) -> bool:
    ctx.disruptions.append(time.time())
    killed = ctx.topo.kill_run_workers()
    ctx.extra["run_workers_killed"] += killed
    if not killed:
        raise Skip("no run worker was running")
    return True


def kill_daemon(ctx: SoakContext, down_s: float) -> bool:
    """SIGKILL the daemon; it stays down `down_s` (the supervisor leaves it alone), then restarts."""
    return kill_process(ctx, "daemon", down_s)


def kill_process(ctx: SoakContext, name: str, down_s: float) -> bool:
    """SIGKILL one of the topology's processes; it stays down `down_s`, then restarts."""
    ctx.disruptions.append(time.time())
    ctx.down.add(name)
    try:
        ctx.topo.restart(name, delay=down_s)
    finally:
        ctx.down.discard(name)
    ctx.extra[f"{name}_kills"] += 1
    return True


def kill_serve(ctx: SoakContext, down_s: float) -> bool:
    """SIGKILL `zencourt serve` (fal webhooks and cancels meet a closed port meanwhile)."""
    return kill_process(ctx, "serve", down_s)


def kill_code_server(ctx: SoakContext, down_s: float) -> bool:
    """SIGKILL the code server (the daemon's sensors and run launches lose it meanwhile)."""
    return kill_process(ctx, "code-server", down_s)


def runway_cancel_failures(ctx: SoakContext, n: int) -> bool:
    """Runway's DELETE answers 503 n times: a cancel fails, is reported, and is retried."""
    with ctx.runway._lock:
        ctx.runway.delete_faults.extend([503] * n)
    return True


def fal_submit_errors(ctx: SoakContext) -> bool:
    """fal's submit answers 429 (retried: provably nothing queued) and then 503 (ambiguous: the
    job fails PROVIDER_ANSWER_LOST, never re-sent)."""
    with ctx.fal._lock:
        ctx.fal.submit_faults.extend([429, 503])
    return True


def receiver_5xx(ctx: SoakContext, n: int) -> bool:
    ctx.receiver.responses.extend([503] * n)
    return True


# -- cancels -----------------------------------------------------------------------------------
def _cancel(ctx: SoakContext, kind: str, target: Any, body: dict) -> bool:
    sent = time.monotonic()
    for attempt in range(CANCEL_ATTEMPTS):  # as the web app would: the service may be restarting
        try:
            response = ctx.topo.service("POST", "/video/cancel", json=body)
            break
        except httpx.HTTPError as exc:
            ctx.log(f"cancel {kind} {target}: {type(exc).__name__}: {exc}")
            if attempt == CANCEL_ATTEMPTS - 1:
                raise Skip(f"the cancel request failed {CANCEL_ATTEMPTS} times: {type(exc).__name__}") from exc
            time.sleep(3.0)
    record = CancelRecord(kind, target, sent, time.monotonic(), response.status_code)
    if response.status_code == 200:
        data = response.json()
        record.job_ids, record.batch_ids = list(data.get("jobIds") or []), list(data.get("batchIds") or [])
        record.pending_tasks = [item["taskId"] for item in data.get("providerTasksPending") or []]
    ctx.cancels.append(record)
    ctx.log(f"cancel {kind} {target}: {response.status_code} jobs={record.job_ids} batches={record.batch_ids}")
    return response.status_code == 200


CANCEL_ATTEMPTS = 5


def cancel_batch(ctx: SoakContext, batch_id: str) -> bool:
    return _cancel(ctx, "batch", batch_id, {"batchId": batch_id})


def cancel_listing(ctx: SoakContext, listing_id: str) -> bool:
    return _cancel(ctx, "listing", listing_id, {"listingId": listing_id})


def cancel_jobs(ctx: SoakContext, job_ids: list[str]) -> bool:
    return _cancel(ctx, "jobs", ",".join(job_ids), {"jobIds": job_ids})


FAULTS: dict[str, Callable[..., bool]] = {f.__name__: f for f in (
    runway_429_storm, runway_5xx_storm, fal_5xx_storm, ambiguous_create_runway, ambiguous_create_fal,
    late_create_answer, duplicate_create_answer, fal_webhook_before_answer, short_body_downloads, expired_outputs,
    provider_download_failures, storage_503, storage_down, slow_storage, db_restart, kill_run_workers,
    kill_daemon, kill_serve, kill_code_server, runway_cancel_failures, fal_submit_errors, receiver_5xx,
    cancel_batch, cancel_listing, cancel_jobs,
)}
# webhook faults decided per fal request by the scripts (counted when they happen)
WEBHOOK_KINDS = ("fal_webhook_dropped", "fal_webhook_duplicate", "fal_webhook_late")
SCRIPT_KINDS = (*WEBHOOK_KINDS, "bad_outputs")  # decided per prompt by the scripts


def _cancel_hits(kind: str) -> Callable[[SoakContext], int]:
    """A cancel hits when its answer canceled something (a job or a whole batch)."""
    return lambda ctx: sum(1 for r in ctx.cancels if r.kind == kind and (r.job_ids or r.batch_ids))


def _fal_requests_hit(ctx: SoakContext, prefix: str, prompts: set[str]) -> int:
    with ctx.fal._lock:
        ids = {req.id for req in ctx.fal.requests.values() if req.body.get("prompt") in prompts}
    return sum(hit.target in ids for hit in ctx.fal.fault_log.hits(prefix))


# how many times each kind of fault actually hit, from what the fakes, the proxy, the receiver and
# the processes recorded (never from the schedule)
HITS: dict[str, Callable[[SoakContext], int]] = {
    "runway_429_storm": lambda ctx: ctx.runway.fault_log.count("create_429", "get_429"),
    "runway_5xx_storm": lambda ctx: ctx.runway.fault_log.count("create_5", "get_5"),
    "fal_5xx_storm": lambda ctx: ctx.fal.fault_log.count("status_5"),
    "ambiguous_create_runway": lambda ctx: ctx.runway.fault_log.count("create_answer_dropped"),
    "ambiguous_create_fal": lambda ctx: ctx.fal.fault_log.count("submit_answer_dropped"),
    "late_create_answer": lambda ctx: ctx.runway.fault_log.count("create_answer_late")
    + ctx.fal.fault_log.count("submit_answer_late"),
    "duplicate_create_answer": lambda ctx: ctx.runway.fault_log.count("create_answer_replayed"),
    "fal_webhook_before_answer": lambda ctx: ctx.fal.fault_log.count("webhook_before_answer"),
    "short_body_downloads": lambda ctx: ctx.runway.fault_log.count("download_fault_short_body")
    + ctx.fal.fault_log.count("download_fault_short_body"),
    "bad_outputs": lambda ctx: ctx.runway.fault_log.count("output_truncated", "output_not_mp4"),
    "storage_down": lambda ctx: ctx.proxy.counts["injected_503_down"],
    "slow_storage": lambda ctx: ctx.proxy.counts["delayed"],
    "expired_outputs": lambda ctx: ctx.runway.fault_log.count("download_expired")
    + ctx.fal.fault_log.count("download_expired"),
    "provider_download_failures": lambda ctx: ctx.runway.fault_log.count("download_fault")
    + ctx.fal.fault_log.count("download_fault"),
    "storage_503": lambda ctx: ctx.proxy.counts["injected_503"],
    "db_restart": lambda ctx: ctx.extra["db_restarts_real"] + ctx.extra["db_connections_terminated"],
    "kill_run_workers": lambda ctx: ctx.extra["run_workers_killed"],
    "kill_daemon": lambda ctx: ctx.extra["daemon_kills"],
    "kill_serve": lambda ctx: ctx.extra["serve_kills"],
    "kill_code_server": lambda ctx: ctx.extra["code-server_kills"],
    "runway_cancel_failures": lambda ctx: ctx.runway.fault_log.count("delete_5"),
    "fal_submit_errors": lambda ctx: ctx.fal.fault_log.count("submit_429", "submit_5"),
    "receiver_5xx": lambda ctx: sum(r.injected and r.status >= 500 for r in ctx.receiver.received),
    "cancel_batch": _cancel_hits("batch"),
    "cancel_listing": _cancel_hits("listing"),
    "cancel_jobs": _cancel_hits("jobs"),
    "fal_webhook_dropped": lambda ctx: _fal_requests_hit(ctx, "webhook_withheld", ctx.lost_prompts),
    "fal_webhook_duplicate": lambda ctx: ctx.fal.fault_log.count("webhook_duplicated"),
    "fal_webhook_late": lambda ctx: len(ctx.late_sent),
}


def scheduled_script_faults(ctx: SoakContext) -> dict[str, int]:
    """The fates the scripts gave to prompts that reached the provider (only those can hit): fal
    webhook fates, and Runway outputs served truncated or not as MP4 (of tasks that succeeded
    with an answered create: the only outputs anyone downloads)."""
    with ctx.fal._lock:
        prompts = {req.body.get("prompt") for req in ctx.fal.requests.values()}
    # a broken output can only be served for a task that succeeded and whose id its client got
    unknown = {hit.target for hit in ctx.runway.fault_log.hits("create_answer_", "create_5")}
    canceled = {job for record in ctx.cancels for job in record.job_ids}
    with ctx.runway._lock:
        runway_prompts = {task.body.get("promptText") for task in ctx.runway.tasks.values()
                          if task.id not in unknown and ctx.runway._status(task)[0] == "SUCCEEDED"
                          and job_of_prompt(task.body.get("promptText")) not in canceled}
    return {"fal_webhook_dropped": len(prompts & ctx.lost_prompts),
            "fal_webhook_duplicate": len(prompts & ctx.duplicate_prompts),
            "fal_webhook_late": len(prompts & ctx.late_prompts),
            "bad_outputs": len(runway_prompts & ctx.bad_output_prompts)}


def fault_table(ctx: SoakContext, events: list[FaultEvent]) -> tuple[list[dict[str, Any]], list[str]]:
    """Per fault kind: scheduled, applied (armed), hit, skipped (with reasons); and the violations:
    a scheduled kind that never hit, a skip without a stated reason."""
    scheduled = Counter(event.kind for event in events) + Counter(scheduled_script_faults(ctx))
    rows, violations = [], []
    for kind in sorted(HITS):
        row = {"kind": kind, "scheduled": scheduled[kind], "applied": ctx.applied[kind], "hit": HITS[kind](ctx),
               "skipped": ctx.skipped[kind], "unexplained": ctx.unexplained[kind]}
        rows.append(row)
        if row["scheduled"] and not row["hit"]:
            violations.append(f"fault {kind}: scheduled {row['scheduled']}, applied {row['applied']}, never hit "
                              f"(skipped {row['skipped']}: {'; '.join(ctx.skip_reasons[kind]) or 'none'})")
        if row["unexplained"]:
            violations.append(f"fault {kind}: {row['unexplained']} skipped without a stated reason")
    return rows, violations


def _params(rng: random.Random, kind: str, config: SoakConfig, plans: list[BatchPlan], used: set[str]) -> dict | None:
    free = [plan for plan in plans if plan.workspace_id is None and plan.id not in used]
    if kind in ("runway_429_storm", "runway_5xx_storm", "fal_5xx_storm"):
        return {"n": rng.randint(2, 6)}
    if kind in ("ambiguous_create_runway", "ambiguous_create_fal", "receiver_5xx", "short_body_downloads"):
        return {"n": rng.randint(1, 2)}
    if kind == "duplicate_create_answer":
        return {"n": 1}
    if kind == "fal_webhook_before_answer":  # held until its webhook came, within the client's read timeout
        return {"n": 2, "max_wait": 40.0}
    if kind == "storage_down":
        return {"seconds": 30.0}
    if kind == "slow_storage":
        return {"delay": round(rng.uniform(1.0, 3.0), 1), "seconds": round(rng.uniform(15.0, 25.0), 1)}
    if kind == "provider_download_failures":
        # enough 503s in a row for a whole fetch (2 URLs x 3 tries) to fail: the output of a paid
        # task is then downloaded again later, never generated again
        return {"n": rng.randint(6, 7)}
    if kind == "late_create_answer":
        return {"n": 1, "delay": round(rng.uniform(2.0, 6.0), 1)}
    if kind == "storage_503":
        return {"share": round(rng.uniform(0.3, 0.5), 2), "seconds": round(rng.uniform(10.0, 20.0), 1)}
    if kind in ("kill_daemon", "kill_serve", "kill_code_server"):
        return {"down_s": round(rng.uniform(1.0, 5.0), 1)}
    if kind == "runway_cancel_failures":
        return {"n": rng.randint(4, 6)}  # more than one cancel call's retries: it fails, is reported
    if kind == "cancel_listing":
        shared: dict[str, list[BatchPlan]] = {}
        for plan in free:
            shared.setdefault(plan.listing_id, []).append(plan)
        listings = sorted(listing for listing, group in shared.items() if len(group) > 1)
        if not listings:
            return None
        listing = rng.choice(listings)
        used.update(plan.id for plan in shared[listing])
        return {"listing_id": listing}
    if kind in ("cancel_batch", "cancel_jobs"):
        if not free:
            return None
        plan = rng.choice(free)
        used.add(plan.id)
        if kind == "cancel_batch":
            return {"batch_id": plan.id}
        jobs = plan.job_ids(config.clips)
        return {"job_ids": rng.sample(jobs, max(1, len(jobs) // 2))}
    return {}


CANCEL_AFTER_S = 10.0  # a cancel lands this long after its batch's insert, or up to CANCEL_SPREAD_S later
CANCEL_SPREAD_S = 8.0
CANCEL_TARGET_LATENCY = (20.0, 25.0)  # provider task latency of the batches a cancel targets
EARLY_KINDS = frozenset({"fal_5xx_storm", "fal_submit_errors", "ambiguous_create_fal", "runway_cancel_failures",
                         "fal_webhook_before_answer"})
EARLY_WINDOW_S = 12.0


# a code server kill takes its run workers with it and stalls run launches for tens of seconds on a
# 2-core machine: only the full mode (long deadlines) schedules it
FULL_MODE_ONLY = frozenset({"kill_code_server"})


def scheduled_kinds(config: SoakConfig) -> list[str]:
    """The fault kinds a run of this mode schedules (one event of each at least)."""
    return [kind for kind in FAULTS if config.full or kind not in FULL_MODE_ONLY]


def build_schedule(rng: random.Random, config: SoakConfig, plans: list[BatchPlan]) -> list[FaultEvent]:
    kinds = scheduled_kinds(config)
    kinds += [rng.choice(kinds) for _ in range(config.extra_faults)]
    used: set[str] = set()
    events = []
    for kind in kinds:
        params = _params(rng, kind, config, plans, used)
        if params is None:
            continue
        # a cancel lands while its batch's provider tasks run (their scripts make them long:
        # `CANCEL_TARGET_LATENCY`): after intake has submitted them, well before they end
        start, end = 2.0, config.fault_window_s
        target = params.get("batch_id") or (params.get("job_ids") or [None])[0]
        if target:
            start = next(p.at for p in plans if p.id == target.rsplit("-", 1)[0] or p.id == target) + CANCEL_AFTER_S
        elif "listing_id" in params:
            start = max(p.at for p in plans if p.listing_id == params["listing_id"]) + CANCEL_AFTER_S
        if kind.startswith("cancel_"):
            end = start + CANCEL_SPREAD_S
        elif kind in EARLY_KINDS:  # armed early: they wait (FIFO) for the sparse requests they hit
            end = EARLY_WINDOW_S
        end = max(start + 1.0, end)
        events.append(FaultEvent(round(rng.uniform(start, end), 1), kind, params))
    return sorted(events, key=lambda event: event.at)
