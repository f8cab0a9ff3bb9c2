"""The soak's end-of-run invariants, each violation one line, plus the figures they measure.

1. every batch (and job) terminal, within its deadline (generation + composition after it
   started processing, plus the watchdog's slack);
2. every provider task the fakes created has its generation_tasks row (by task id), or is
   covered by a possibly_orphaned row of its job and provider (an ambiguous create);
3. no clip paid twice, as docs/data.md states it: per job a new paid task only after the previous
   one failed at the provider; an ambiguous create is never re-sent and never fallen back (no
   task of its job after it); never two tasks that succeeded;
4. every canceled job's provider tasks were canceled at the provider (the fake saw the cancel),
   or finished before the cancel; every job a cancel answer listed ends canceled, and every batch
   it listed ends canceled;
5. every object under a final key is a valid MP4 and matches its database row;
6. the web app got exactly one terminal event id per batch in 2xx deliveries, matching the
   batch's status; no webhook left pending;
7. no quota above its limit (the usage table and the tasks the fakes created);
8. expected outcomes: a job that no cancel listed ends `completed` unless a fault that hit it
   allows its failure (an ambiguous create: PROVIDER_ANSWER_LOST; the quota workspace:
   QUOTA_EXCEEDED; failed downloads of its output: OUTPUT_DOWNLOAD_FAILED); a batch with such a
   job ends `completed`. A completion lost on the way is a violation even when the watchdog ends
   the job later.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa

from zencourt_pipeline.db.clock import as_utc
from zencourt_pipeline.db.records import Batch, CompletionRecord, Job, OutboxEvent, Record, Task
from zencourt_pipeline.db.schema import generation_completions
from zencourt_pipeline.media.ffmpeg import probe
from zencourt_pipeline_tests.soak.context import TERMINAL, SoakContext, job_of_prompt

SLACK_S = 45.0  # sensor interval and a loaded machine: how late past its deadline a batch may end
R = TypeVar("R", bound=Record)
TERMINAL_EVENTS = {"completed": "batch.completed", "failed": "batch.failed", "canceled": "batch.canceled"}
RUNWAY_FAILED = {"FAILED"}
BAD_OUTPUTS = {"truncated", "not_mp4"}
FAL_FAILED = {"fail", "content_policy"}


def _rows(ctx: SoakContext, query: str, record: type[R]) -> list[R]:
    with ctx.topo.db.db.engine.connect() as conn:
        return [record.from_row(row) for row in conn.execute(sa.text(query))]


def _ambiguous_answer_ids(ctx: SoakContext) -> set[str]:
    """Task and request ids whose create answer the fakes dropped or sent late (from their fault logs)."""
    hits = ctx.runway.fault_log.hits("create_answer_") + ctx.fal.fault_log.hits("submit_answer_")
    return {hit.target for hit in hits}


def fake_tasks(ctx: SoakContext) -> list[dict]:
    """Every task the fakes created: provider, id, job, created/natural end (monotonic), final state."""
    out = []
    with ctx.runway._lock:
        for task in ctx.runway.tasks.values():
            latency = ctx.runway.latency if task.script.latency is None else task.script.latency
            final = task.final or ctx.runway._status(task)[0]
            bad_output = task.script.output in BAD_OUTPUTS
            out.append({"provider": "runway", "id": task.id, "job": job_of_prompt(task.body.get("promptText")),
                        "created": task.created_at, "ends": task.created_at + latency, "final": final,
                        # a task whose output the fake serves broken (truncated, not MP4) is the
                        # provider's failure: the fallback after it is a counted second task
                        "canceled": final == "CANCELLED", "failed": final in RUNWAY_FAILED or bad_output,
                        "succeeded": final == "SUCCEEDED" and not bad_output, "deleted": task.deleted})
    with ctx.fal._lock:
        for req in ctx.fal.requests.values():
            latency = ctx.fal.latency if req.script.latency is None else req.script.latency
            ctx.fal._state(req)
            out.append({"provider": "fal", "id": req.id, "job": job_of_prompt(req.body.get("prompt")),
                        "created": req.created_at, "ends": req.created_at + latency, "final": req.final,
                        "canceled": req.final == "canceled", "failed": req.final in FAL_FAILED,
                        "succeeded": req.final == "succeed", "deleted": False, "prompt": req.body.get("prompt"),
                        "copies": req.script.webhook_copies})
    return sorted(out, key=lambda t: t["created"])


def check(ctx: SoakContext) -> tuple[list[str], dict[str, Any]]:
    violations: list[str] = []
    figures: dict[str, Any] = {}
    batches = {b.id: b for b in _rows(ctx, "SELECT * FROM video_gen_batch", Batch)}
    jobs = {j.id: j for j in _rows(ctx, "SELECT * FROM video_gen_jobs", Job)}
    rows = _rows(ctx, "SELECT * FROM generation_tasks ORDER BY id", Task)
    outbox = _rows(ctx, "SELECT * FROM webhook_outbox", OutboxEvent)
    tasks = fake_tasks(ctx)
    _terminal(ctx, batches, jobs, outbox, violations, figures)
    orphans = _accounted(ctx, tasks, rows, violations, figures)
    _paid_once(tasks, rows, orphans, violations, figures)
    _cancels(ctx, tasks, jobs, orphans, violations, figures)
    _objects(ctx, batches, jobs, violations, figures)
    _webhooks(ctx, batches, violations, figures)
    _quota(ctx, tasks, orphans, violations, figures)
    _expected_outcomes(ctx, batches, jobs, tasks, violations, figures)
    if ctx.extra["webhooks_left_pending"]:
        violations.append(f"{ctx.extra['webhooks_left_pending']} web-app webhooks still pending after the drain")
    return violations, figures


def _terminal(ctx, batches, jobs, outbox, violations, figures) -> None:
    by_status = Counter(b.status for b in batches.values())
    figures["batches_completed"] = by_status["completed"]
    figures["batches_failed"] = by_status["failed"]
    figures["batches_canceled"] = by_status["canceled"]
    figures["jobs_total"] = len(jobs)
    figures["jobs_terminal"] = sum(j.status in TERMINAL for j in jobs.values())
    figures["lost"] = len(ctx.plans) - sum(b.status in TERMINAL for b in batches.values())
    for code, count in sorted(Counter(b.error_code or "NONE" for b in batches.values() if b.status == "failed").items()):
        figures[f"failed_by_code_{code}"] = count
    for code, count in sorted(Counter(j.error_code or "NONE" for j in jobs.values() if j.status == "failed").items()):
        figures[f"jobs_failed_by_code_{code}"] = count
    limit = ctx.config.generation_deadline_s + ctx.config.composition_deadline_s + SLACK_S
    ended: dict[str, datetime] = {}
    for row in outbox:
        if row.event in TERMINAL_EVENTS.values() and row.job_id is None:
            at = as_utc(row.created_at)
            ended[row.batch_id] = min(at, ended.get(row.batch_id, at))
    for plan in ctx.plans:
        batch = batches.get(plan.id)
        if batch is None:
            violations.append(f"batch {plan.id} is missing from the database")
            continue
        if batch.status not in TERMINAL:
            violations.append(f"batch {plan.id} is {batch.status} at the end (never terminal)")
            continue
        start = as_utc(batch.processing_started_at or batch.created_at)
        took = ((ended.get(plan.id) or as_utc(batch.updated_at)) - start).total_seconds()
        if took > limit:
            violations.append(f"batch {plan.id} ended {batch.status} {took:.0f} s after it started, "
                              f"past its deadline ({limit:.0f} s)")
    for job in jobs.values():
        if job.status not in TERMINAL and getattr(batches.get(job.batch_id), "status", None) in TERMINAL:
            violations.append(f"job {job.id} is {job.status} in terminal batch {job.batch_id}")


def _accounted(ctx, tasks, rows, violations, figures) -> set[str]:
    """Task ids covered by possibly_orphaned rows (no row of their own)."""
    by_id = {(r.provider, r.task_id) for r in rows if r.task_id}
    orphan_rows = [r for r in rows if r.possibly_orphaned]
    budget = Counter((r.job_id, r.provider) for r in orphan_rows if not r.task_id)
    dropped = _ambiguous_answer_ids(ctx)
    covered: set[str] = set()
    for task in tasks:
        if (task["provider"], task["id"]) in by_id:
            continue
        key = (task["job"], task["provider"])
        if budget[key] > 0:
            budget[key] -= 1
            covered.add(task["id"])
            continue
        why = "its create answer was dropped or late" if task["id"] in dropped else (
            f"{len(dropped)} create answers were dropped or late in all")
        violations.append(f"{task['provider']} task {task['id']} of job {task['job']} ({task['final']}) has no "
                          f"generation_tasks row and no possibly_orphaned row covers it ({why})")
    figures["orphaned_tasks"] = len(orphan_rows)
    figures["ambiguous_creates_by_fakes"] = len(dropped)
    figures["unflagged_orphan_rows"] = sum(budget.values())
    figures["paid_tasks"] = len(tasks)
    figures["spend_usd"] = round(sum(r.cost_usd or 0.0 for r in rows), 4)
    figures["fallbacks"] = len({t["job"] for t in tasks if t["provider"] == "fal"})
    return covered


def _paid_once(tasks, rows, orphans, violations, figures) -> None:
    flagged = {r.task_id for r in rows if r.possibly_orphaned and r.task_id}
    per_job: dict[str, list[dict]] = defaultdict(list)
    for task in tasks:
        per_job[task["job"]].append(task)
    twice = 0
    for job, job_tasks in sorted(per_job.items(), key=lambda item: str(item[0])):
        ambiguous = [t for t in job_tasks if t["id"] in orphans or t["id"] in flagged]
        succeeded = [t for t in job_tasks if t["succeeded"] and t not in ambiguous]
        if len(succeeded) > 1:
            twice += 1
            violations.append(f"job {job} paid twice: {len(succeeded)} succeeded tasks "
                              + ", ".join(f"{t['provider']}:{t['id']}" for t in succeeded))
            continue
        for earlier in job_tasks[:-1]:
            if earlier in ambiguous:
                twice += 1
                violations.append(f"job {job}: a new paid task followed the ambiguous create of {earlier['provider']} "
                                  f"task {earlier['id']} (an ambiguous create is never re-sent, never fallen back)")
                break
            if not earlier["failed"]:
                twice += 1
                violations.append(f"job {job}: a new paid task followed {earlier['provider']} task {earlier['id']}, "
                                  f"which ended {earlier['final']} (not a provider failure)")
                break
    # a succeeded task whose output was the provider's bad output (INVALID_OUTPUT) is paid and unused
    db_succeeded = Counter(r.job_id for r in rows if r.status == "succeeded" and r.error_code != "INVALID_OUTPUT")
    for job, count in sorted(db_succeeded.items()):
        if count > 1:
            violations.append(f"job {job} has {count} succeeded generation_tasks rows")
    figures["duplicates"] = twice


def _cancels(ctx, tasks, jobs, orphans, violations, figures) -> None:
    canceled_at: dict[str, float] = {}
    for record in ctx.cancels:
        for job_id in record.job_ids:
            canceled_at.setdefault(job_id, record.answered_at)
    figures["cancel_requests"] = len(ctx.cancels)
    figures["jobs_canceled"] = sum(j.status == "canceled" for j in jobs.values())
    figures["cancel_answer_jobs"] = len(canceled_at)
    figures["cancel_answer_pending_tasks"] = sum(len(r.pending_tasks) for r in ctx.cancels)
    figures["cancel_unknown_tasks"] = 0
    for job_id in sorted(canceled_at):
        job = jobs.get(job_id)
        if job is None or job.status != "canceled":
            violations.append(f"job {job_id} was in a cancel answer but ended {getattr(job, 'status', 'missing')}")
    for record in ctx.cancels:
        for batch_id in record.batch_ids:
            status = _batch_status(ctx, batch_id)
            if status != "canceled":
                violations.append(f"batch {batch_id} was canceled as a whole ({record.kind} {record.target}) "
                                  f"but ended {status}")
    in_flight = [t for t in tasks if t["job"] in canceled_at and t["created"] < canceled_at[t["job"]] < t["ends"]]
    figures["cancel_tasks_in_flight"] = len(in_flight)
    if canceled_at and not in_flight:
        violations.append("no cancel landed while a provider task of its jobs was running: "
                          "stopping spend at the provider was not exercised")
    for task in tasks:
        job = jobs.get(task["job"])
        if job is None or job.status != "canceled":
            continue
        at = canceled_at.get(task["job"])
        if at is None:
            violations.append(f"job {task['job']} is canceled but no cancel request named it")
            continue
        if task["canceled"] or task["deleted"] or task["ends"] <= at:
            continue
        if task["id"] in orphans:  # its create was cut off unanswered (counted as possibly paid): its id is unknown
            figures["cancel_unknown_tasks"] = figures.get("cancel_unknown_tasks", 0) + 1
            continue
        violations.append(f"{task['provider']} task {task['id']} of canceled job {task['job']} ran on to "
                          f"{task['final']} ({task['ends'] - at:+.1f} s after the cancel; created "
                          f"{task['created'] - at:+.1f} s after it), never canceled at the provider")


def _batch_status(ctx: SoakContext, batch_id: str) -> str | None:
    with ctx.topo.db.db.engine.connect() as conn:
        return conn.execute(sa.text("SELECT status FROM video_gen_batch WHERE id = :id"), {"id": batch_id}).scalar()


def _valid_mp4(ctx: SoakContext, key: str) -> str | None:
    local = ctx.topo.tmp / "soak-check.mp4"
    try:
        ctx.storage.get_file(key, local)
        info = probe(local, count_frames=True)
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        return f"{type(exc).__name__}: {exc}"
    if info.codec != "h264" or not info.frame_count:
        return f"codec {info.codec}, {info.frame_count} frames"
    return None


def _objects(ctx, batches, jobs, violations, figures) -> None:
    keys = set(ctx.storage.list_keys("batches/"))
    final = sorted(k for k in keys if k.endswith(".mp4") and any(f"/{d}/" in k for d in ("generated", "clips", "video")))
    for key in final:
        problem = _valid_mp4(ctx, key)
        if problem:
            violations.append(f"object {key} is not a valid MP4: {problem}")
    figures["final_objects_checked"] = len(final)
    prefix = f"s3://{ctx.storage.bucket}/"
    for batch in batches.values():
        if batch.status == "completed":
            key = (batch.video_url or "").removeprefix(prefix)
            if key not in keys or "/video/" not in key:
                violations.append(f"completed batch {batch.id} names video {batch.video_url!r}, not a stored final video")
    for job in jobs.values():
        if job.status == "completed":
            key = (job.video_url or "").removeprefix(prefix)
            if key not in keys:
                violations.append(f"completed job {job.id} names clip {job.video_url!r}, which is not stored")
            if job.raw_clip_key and job.raw_clip_key not in keys:
                violations.append(f"completed job {job.id} names raw clip {job.raw_clip_key!r}, not stored")


def _webhooks(ctx, batches, violations, figures) -> None:
    ids: dict[str, set[str]] = defaultdict(set)
    events: dict[str, set[str]] = defaultdict(set)
    told_error: dict[str, str | None] = {}
    deliveries = 0
    for request in ctx.receiver.received:
        if not 200 <= request.status < 300:
            continue  # refused by the web app: not delivered
        try:
            body = json.loads(request.body)
        except ValueError:
            continue
        if body.get("event") in TERMINAL_EVENTS.values():
            deliveries += 1
            ids[body.get("batchId")].add(body.get("id"))
            events[body.get("batchId")].add(body.get("event"))
            told_error[body.get("batchId")] = body.get("error")
    figures["terminal_webhook_deliveries"] = deliveries
    # reported, not (yet) an invariant: the batch row's error differs from what the web app was told
    mismatched = sorted(b for b, error in told_error.items() if b in batches and batches[b].error != error)
    figures["batches_error_differs_from_webhook"] = len(mismatched)
    for batch_id in mismatched:
        print(f"note: batch {batch_id} row error {batches[batch_id].error!r}, web app told {told_error[batch_id]!r}")
    for plan in ctx.plans:
        batch = batches.get(plan.id)
        if batch is None or batch.status not in TERMINAL:
            continue
        if len(ids[plan.id]) != 1:
            violations.append(f"batch {plan.id} ({batch.status}): the web app got {len(ids[plan.id])} terminal "
                              f"event ids {sorted(events[plan.id])}, not exactly one")
        elif events[plan.id] != {TERMINAL_EVENTS[batch.status]}:
            violations.append(f"batch {plan.id} is {batch.status} but the web app was told {sorted(events[plan.id])}")


def _quota(ctx, tasks, orphans, violations, figures) -> None:
    if not ctx.config.quota_batches:
        return  # no quota workspace in this run
    limit = ctx.config.workspace_quota
    with ctx.topo.db.db.engine.connect() as conn:  # no record: the quota table never leaves db/
        usage = conn.execute(sa.text("SELECT * FROM clip_quota_usage")).all()
    for use in usage:
        if use.scope == "workspace" and use.used > limit:
            violations.append(f"workspace {use.scope_id} used {use.used} clips in {use.month}, quota {limit}")
    quota_jobs = {job for plan in ctx.plans if plan.workspace_id for job in plan.job_ids(ctx.config.clips)}
    created = [t for t in tasks if t["job"] in quota_jobs]
    ambiguous = sum(t["id"] in orphans for t in created)
    if len(created) - ambiguous > limit:
        violations.append(f"the fakes created {len(created)} tasks for the quota workspace's jobs "
                          f"({ambiguous} ambiguous), quota {limit}")
    figures["quota_limit"] = limit
    figures["quota_workspace_tasks"] = len(created)


def _fault_jobs(ctx: SoakContext, tasks: list[dict]) -> dict[str, set[str]]:
    """Per fault that may fail a job for good, the jobs it hit (from the fakes' fault logs)."""
    job_of_task = {t["id"]: t["job"] for t in tasks}
    ambiguous = {job_of_task.get(h.target) for h in ctx.runway.fault_log.hits("create_answer_", "create_5")}
    ambiguous |= {job_of_prompt(h.target) for h in ctx.runway.fault_log.hits("create_5") if ":" in h.target}
    ambiguous |= {job_of_task.get(h.target) for h in ctx.fal.fault_log.hits("submit_answer_")}
    ambiguous |= {job_of_prompt(h.target) for h in ctx.fal.fault_log.hits("submit_5")}
    downloads: set[str | None] = set()
    for fake in (ctx.runway, ctx.fal):
        for hit in fake.fault_log.hits("download_"):
            token = fake.tokens.get(hit.target)
            downloads.add(job_of_task.get(token.owner) if token else None)
    return {"PROVIDER_ANSWER_LOST": ambiguous - {None}, "OUTPUT_DOWNLOAD_FAILED": downloads - {None}}


DISRUPTION_WINDOW_S = 30.0


def _interrupted_creates(ctx: SoakContext) -> set[str]:
    """Jobs whose create may have been cut off by a process kill or a database restart: a
    possibly_orphaned row written shortly before one (docs/data.md's rule: a run that dies between
    the ledger row and the provider's answer never re-sends the create)."""
    rows = _rows(ctx, "SELECT * FROM generation_tasks WHERE possibly_orphaned", Task)
    jobs = set()
    for row in rows:
        if row.created_at is None:
            continue
        at = as_utc(row.created_at).timestamp()
        if any(0 <= when - at <= DISRUPTION_WINDOW_S for when in ctx.disruptions):
            jobs.add(row.job_id)
    return jobs


def _expected_outcomes(ctx, batches, jobs, tasks, violations, figures) -> None:
    canceled = {job for record in ctx.cancels for job in record.job_ids}
    canceled_batches = {batch for record in ctx.cancels for batch in record.batch_ids}
    allowed = _fault_jobs(ctx, tasks)
    allowed["PROVIDER_ANSWER_LOST"] |= _interrupted_creates(ctx)
    quota_jobs = {job for plan in ctx.plans if plan.workspace_id for job in plan.job_ids(ctx.config.clips)}
    allowed["QUOTA_EXCEEDED"] = quota_jobs
    expected_complete: set[str] = set()
    unexpected = 0
    for job in sorted(jobs.values(), key=lambda j: j.id):
        if job.id in canceled or job.batch_id in canceled_batches:
            continue
        excuses = sorted(code for code, hit in allowed.items() if job.id in hit)
        if job.status == "failed" and job.error_code in excuses:
            continue
        if not excuses:
            expected_complete.add(job.id)
        if job.status != "completed":
            unexpected += 1
            violations.append(f"job {job.id} ended {job.status} {job.error_code or ''}, but the faults that hit it "
                              f"({', '.join(excuses) or 'none that can fail a job'}) were recoverable")
            for line in job_story(ctx, job, batches.get(job.batch_id), tasks):
                ctx.log(f"story {job.id}: {line}")
    for batch_id in sorted({jobs[j].batch_id for j in expected_complete}):
        batch = batches.get(batch_id)
        if batch is not None and batch.status != "completed" and batch_id not in canceled_batches:
            violations.append(f"batch {batch_id} ended {batch.status} {batch.error_code or ''} although it has "
                              "jobs whose faults were all recoverable")
    figures["jobs_expected_completed"] = len(expected_complete)
    figures["jobs_unexpected_outcome"] = unexpected


def job_story(ctx: SoakContext, job: Job, batch: Batch | None, tasks: list[dict]) -> list[str]:
    """What happened to a job whose outcome is a violation, for the report: its ledger rows, the
    completions recorded for them and the fakes' tasks, in seconds after its batch started processing."""
    origin = as_utc(batch.processing_started_at or batch.created_at) if batch else None

    def at(when: datetime | None) -> str:
        return "-" if when is None or origin is None else f"{(as_utc(when) - origin).total_seconds():+.1f}s"

    db = ctx.topo.db
    rows = db.ledger.tasks_for_job(job.id)
    ids = [row.task_id for row in rows if row.task_id]
    # by task id, not by batch: a completion left unlinked (job and batch null) shows here too
    with db.db.engine.connect() as conn:
        query = sa.select(generation_completions).where(generation_completions.c.task_id.in_(ids))
        completions = [CompletionRecord.from_row(row) for row in conn.execute(query.order_by(generation_completions.c.id))]
    lines = [f"job {job.status} {job.error_code} {job.error_message!r} provider_task_id={job.provider_task_id} "
             f"updated {at(job.updated_at)}"]
    lines += [f"task {r.provider} {r.task_id} {r.status} submitted {at(r.submitted_at)} finished {at(r.finished_at)} "
              f"polled {at(r.last_polled_at)} orphaned={r.possibly_orphaned} downloads={r.download_attempts} "
              f"{r.error_code or ''} {r.download_error or ''}" for r in rows]
    lines += [f"completion {c.provider} {c.task_id} {c.status} by {c.source} at {at(c.received_at)}" for c in completions]
    lines += [f"fake {t['provider']} {t['id']} final={t['final']}" for t in tasks if t["job"] == job.id]
    return lines
