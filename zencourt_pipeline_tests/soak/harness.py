"""The soak run: the production topology (Postgres, daemon, code server, webserver, `zencourt
serve`, moto behind a fault proxy, fake Runway and fal, a web-app receiver), configured only
through environment variables, under the seeded fault schedule of `faults.py`; at the end the
invariants of `invariants.py` are checked and `name: value` figures reported."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from zencourt_pipeline_tests.batches import ONE_OUTPUT_JSON
from zencourt_pipeline_tests.fakes.fal import FakeFal, FalScript
from zencourt_pipeline_tests.fakes.runway import FakeRunway, RunwayScript
from zencourt_pipeline_tests.fakes.server import RequestRecorder
from zencourt_pipeline_tests.soak import invariants, mutants
from zencourt_pipeline_tests.soak.cluster import OwnCluster
from zencourt_pipeline_tests.soak.context import TERMINAL, BatchPlan, SoakConfig, SoakContext, prompt_of
from zencourt_pipeline_tests.soak.faults import CANCEL_TARGET_LATENCY, build_schedule, fault_table
from zencourt_pipeline_tests.soak.proxy import StorageFaultProxy
from zencourt_pipeline_tests.soak.scheduler import LateWebhooks, Scheduler
from zencourt_pipeline_tests.topology import ScratchDatabases, Topology, e2e_storage, start_s3

QUOTA_WORKSPACE = "W-soak-quota"
SUPERVISED = ("daemon", "code-server", "serve", "webserver")


@dataclass
class SoakReport:
    figures: dict[str, float | int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    schedule: list[str] = field(default_factory=list)
    faults: list[dict] = field(default_factory=list)  # per kind: scheduled, applied, hit, skipped
    bites: list[str] = field(default_factory=list)  # what the mutant changed, when one ran

    def lines(self) -> list[str]:
        table = [f"fault {row['kind']:<28} scheduled {row['scheduled']:>3}  armed {row['applied']:>3}  "
                 f"hit {row['hit']:>4}  skipped {row['skipped']:>2}" for row in self.faults]
        return table + [f"violation: {v}" for v in self.violations] + [f"{k}: {v}" for k, v in self.figures.items()]

    def __getitem__(self, name: str):
        return self.figures[name]


def make_plans(rng: random.Random, config: SoakConfig) -> list[BatchPlan]:
    """Batch ids, listings and insert times. The first `quota_batches` share the quota workspace
    and are inserted together; the rest come spread over `insert_spread_s`, some in pairs of one
    listing (the targets of cancels by listing)."""
    plans = []
    shared: dict[int, bool] = {0: True}  # pair 0 always shares a listing
    for index in range(config.batches):
        batch_id = f"soak-{index:04d}"
        if index < config.quota_batches:
            plans.append(BatchPlan(batch_id, f"L-{batch_id}", 0.0, workspace_id=QUOTA_WORKSPACE))
            continue
        pair = (index - config.quota_batches) // 2
        if shared.setdefault(pair, rng.random() < 0.4):
            listing = f"L-pair-{pair}"
        else:
            listing = f"L-{batch_id}"
        plans.append(BatchPlan(batch_id, listing, round(rng.uniform(0.0, config.insert_spread_s), 1)))
    return sorted(plans, key=lambda plan: plan.at)


BAD_OUTPUTS = ("truncated", "not_mp4")


def script_prompts(rng: random.Random, ctx: SoakContext, cancel_targets: set[str] = frozenset()) -> None:
    """Runway fails a share of prompts (they fall back to fal); every fal request has a webhook
    fate: delivered, dropped (the reconciler polls), duplicated or late. Each fate at least once."""
    config, low_high = ctx.config, ctx.config.latency
    prompts = [prompt_of(plan.id, index) for plan in ctx.plans for index in range(config.clips)]
    failing = {p for p in prompts if rng.random() < config.runway_failure_rate}
    fates = ["lost", "duplicate", "late", "deliver"]
    # the guaranteed fallbacks go to batches no cancel targets, outside the quota workspace; each
    # fate twice where there are prompts enough (an ambiguous create may hit one: no fallback then)
    guaranteed = ["lost", "duplicate", "late", "late", "duplicate", "lost"]
    avoid = set(cancel_targets) | {plan.id for plan in ctx.plans if plan.workspace_id}
    candidates = [p for p in prompts if p.split(":")[0] not in avoid]
    picked = rng.sample(candidates, min(len(guaranteed) + len(BAD_OUTPUTS), len(candidates)))
    # Runway succeeds but serves the output truncated (a complete 200 of 60% of the file) or as
    # an HTML page: the provider's bad output, which falls back to fal (a counted second task)
    # picked in turn: each webhook fate once, the broken outputs, then each fate a second time
    fated = dict(zip(picked, guaranteed[:3], strict=False))
    bad = dict(zip(picked[len(fated):], BAD_OUTPUTS, strict=False))
    fated |= dict(zip(picked[len(fated) + len(bad):], guaranteed[3:], strict=False))
    for prompt, fate in fated.items():
        failing.add(prompt)  # guaranteed fallbacks, each with a webhook fate
        _fal_script(ctx, prompt, fate, rng)
    ctx.bad_output_prompts.update(prompt for prompt in bad if prompt not in failing)
    for prompt in prompts:
        failure = prompt in failing
        # the batches a cancel targets run long tasks: the cancel lands while they are in flight
        latency = CANCEL_TARGET_LATENCY if prompt.split(":")[0] in cancel_targets else low_high
        ctx.runway.scripts.for_prompt(prompt, RunwayScript(
            latency=round(rng.uniform(*latency), 2), outcome="fail" if failure else "succeed",
            failure_code="INTERNAL.BAD_OUTPUT.CODE01" if failure else None,
            output=bad[prompt] if prompt in ctx.bad_output_prompts else "ok"))
        if not any(prompt in s for s in (ctx.late_prompts, ctx.lost_prompts, ctx.duplicate_prompts)):
            _fal_script(ctx, prompt, rng.choices(fates, weights=[2, 1.5, 1.5, 5])[0], rng)


def _fal_script(ctx: SoakContext, prompt: str, fate: str, rng: random.Random) -> None:
    latency = round(rng.uniform(*ctx.config.latency), 2)
    if fate == "lost":
        ctx.lost_prompts.add(prompt)
        script = FalScript(latency=latency, webhook="lost")
    elif fate == "late":
        ctx.late_prompts.add(prompt)
        script = FalScript(latency=latency, webhook="lost")  # LateWebhooks delivers it
    elif fate == "duplicate":
        ctx.duplicate_prompts.add(prompt)
        script = FalScript(latency=latency, webhook_copies=3)
    else:
        script = FalScript(latency=latency)
    ctx.fal.scripts.for_prompt(prompt, script)


def topology_env(ctx_config: SoakConfig, runway: FakeRunway, fal: FakeFal) -> dict[str, str]:
    return {
        "GENERATION_PROVIDERS": "runway,fal",
        "RUNWAY_API_URL": runway.url, "RUNWAY_API_KEY": runway.api_key,
        "FAL_QUEUE_URL": fal.url, "FAL_KEY": fal.key, "FAL_JWKS_URL": fal.jwks_url,
        "MEDIA_ALLOWED_PRIVATE_HOSTS": "127.0.0.1",
        "FAL_WEBHOOK_OVERDUE_SECONDS": str(ctx_config.fal_webhook_overdue_s),
        "ZENCOURT_GENERATION_DEADLINE_SECONDS": str(ctx_config.generation_deadline_s),
        "ZENCOURT_COMPOSITION_DEADLINE_SECONDS": str(ctx_config.composition_deadline_s),
    } | ({"ZENCOURT_WORKSPACE_MONTHLY_CLIP_QUOTA": str(ctx_config.workspace_quota)} if ctx_config.quota_batches else {})


def _retrying(fn, attempts: int = 20):
    """The harness's own database calls ride out the injected database restarts."""
    for attempt in range(attempts):
        try:
            return fn()
        except sa.exc.OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(1.0)


def insert_batch(ctx: SoakContext, plan: BatchPlan, photo_uri: str) -> None:
    batch = {"id": plan.id, "listing_id": plan.listing_id, "title": "Soak Test Lane", "outputs": ONE_OUTPUT_JSON}
    if plan.workspace_id:
        batch["workspace_id"] = plan.workspace_id
    jobs = [{"id": f"{plan.id}-{i}", "sort_order": i, "room_name": f"Room {i}", "image_url": photo_uri,
             "duration_seconds": 2, "prompt": prompt_of(plan.id, i)} for i in range(ctx.config.clips)]
    _retrying(lambda: ctx.topo.db.batches.insert_batch(batch, jobs))
    ctx.log(f"inserted {plan.id} listing={plan.listing_id}" + (f" workspace={plan.workspace_id}" if plan.workspace_id else ""))


def open_batches(ctx: SoakContext) -> int:
    def count() -> int:
        with ctx.topo.db.db.engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT count(*) FROM video_gen_batch WHERE status NOT IN ('completed','failed','canceled')")).scalar()
    return _retrying(count)


def supervise(ctx: SoakContext) -> None:
    """A process that died on its own (e.g. the database went away under it) is restarted."""
    for name in SUPERVISED:
        if name in ctx.topo.commands and name not in ctx.down and not ctx.topo.alive(name):
            ctx.log(f"supervisor: {name} is not running, restarting it")
            ctx.extra[f"process_restarts_{name}"] += 1
            ctx.topo.restart(name, kill=False)


def drain_outbox(ctx: SoakContext, timeout: float) -> int:
    """Wait for the web-app webhooks still pending; returns how many are left."""
    deadline = time.monotonic() + timeout
    while True:
        def pending() -> int:
            with ctx.topo.db.db.engine.connect() as conn:
                return conn.execute(sa.text("SELECT count(*) FROM webhook_outbox WHERE status = 'pending'")).scalar()
        left = _retrying(pending)
        if left == 0 or time.monotonic() > deadline:
            return left
        time.sleep(1.0)


def run_soak(workdir: Path, config: SoakConfig) -> SoakReport:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    rng = random.Random(config.seed)
    cluster = OwnCluster().start() if config.db_restart == "restart" else None
    databases = ScratchDatabases("zc_soak", **({"admin_url": cluster.admin_url} if cluster else {}))
    admin, names, urls = databases.admin, databases.names, databases.urls
    moto, endpoint = start_s3()
    proxy = StorageFaultProxy(endpoint, seed=config.seed).start()
    storage = e2e_storage(endpoint)
    topo = scheduler = late = None
    report = SoakReport()
    try:
        with FakeRunway() as runway, FakeFal() as fal, RequestRecorder() as receiver:
            env = topology_env(config, runway, fal)
            # compute logs straight to moto: the proxy's seeded faults stay on the pipeline's own storage calls
            env["DAGSTER_COMPUTE_LOGS_ENDPOINT"] = endpoint
            if config.mutant:
                env |= mutants.child_env(config.mutant, workdir / "mutant-bites.log")
            topo = Topology(workdir, urls[0], urls[1], receiver.url, proxy.url, extra_env=env)
            topo.env["FAL_WEBHOOK_URL"] = f"http://127.0.0.1:{topo.service_port}/webhooks/fal"
            topo.start_all()
            from zencourt_pipeline_tests.defs.conftest import write_photo

            photo_key = "uploads/soak/photo.jpg"
            storage.put_file(photo_key, write_photo(workdir / "photo.jpg"), "image/jpeg")
            ctx = SoakContext(config, topo, runway, fal, receiver, proxy, storage, admin, names, cluster)
            ctx.plans = make_plans(rng, config)
            events = build_schedule(rng, config, ctx.plans) if config.faults else []
            if config.faults:  # without faults: the fakes' default scripts, every task succeeds
                script_prompts(rng, ctx, _cancel_targets(ctx, events))
            report.schedule = [event.describe() for event in events]
            print(f"soak: {config.batches} batches of {config.clips} clips, seed {config.seed}, "
                  f"{'full' if config.full else 'ci'} mode, db_restart={config.db_restart}, "
                  f"{'mutant ' + config.mutant + ', ' if config.mutant else ''}"
                  f"workspace quota {config.workspace_quota} over {config.quota_batches} batches", flush=True)
            for line in report.schedule:
                print(f"schedule: {line}", flush=True)
            ctx.started = time.monotonic()
            scheduler, late = Scheduler(ctx, events), LateWebhooks(ctx, rng)
            scheduler.start()
            late.start()
            timeout = config.timeout_s or (config.insert_spread_s + config.generation_deadline_s
                                           + config.composition_deadline_s + 120.0)
            pending = list(ctx.plans)
            while ctx.now() < timeout:
                while pending and pending[0].at <= ctx.now():
                    insert_batch(ctx, pending.pop(0), storage.uri(photo_key))
                supervise(ctx)
                if not pending and open_batches(ctx) == 0 and ctx.now() > 5.0:
                    break
                time.sleep(0.5)
            wall = ctx.now()
            scheduler.stopping.set()
            ctx.log(f"all batches ended after {wall:.1f} s" if open_batches(ctx) == 0 else "TIMEOUT: batches still open")
            supervise(ctx)
            ctx.receiver.responses.clear()
            ctx.extra["webhooks_left_pending"] = drain_outbox(ctx, 60.0)
            time.sleep(2.0)  # duplicate fal webhooks and cancels still in flight land
            late.stopping.set()
            report.violations, figures = invariants.check(ctx)
            report.faults, fault_violations = fault_table(ctx, events)
            report.violations += fault_violations
            report.figures = _figures(ctx, wall, figures, report.faults, report.violations)
            if config.mutant:
                report.bites = mutants.bites(workdir / "mutant-bites.log")
                report.figures["soak_mutant_bites"] = len(report.bites)
            (workdir / "soak-log.txt").write_text("\n".join(ctx.log_lines))
            return report
    finally:
        for thread in (scheduler, late):
            if thread is not None:
                thread.stopping.set()
        if topo is not None:
            topo.stop_all()
            _kill_leftovers(topo)
        proxy.stop()
        moto.stop()
        databases.close()
        if cluster is not None:
            cluster.stop()


def _cancel_targets(ctx: SoakContext, events: list) -> set[str]:
    targets = set()
    for event in events:
        targets.add(event.params.get("batch_id"))
        targets.update(job.rsplit("-", 1)[0] for job in event.params.get("job_ids", []))
        targets.update(p.id for p in ctx.plans if p.listing_id == event.params.get("listing_id"))
    return targets - {None}


def _kill_leftovers(topo: Topology) -> None:
    """Whatever still runs with this topology's DAGSTER_HOME (a run worker orphaned by a kill)."""
    import os
    import signal

    marker = b"DAGSTER_HOME=" + topo.env["DAGSTER_HOME"].encode() + b"\0"
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "environ").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                pass


def _figures(ctx: SoakContext, wall: float, checked: dict, faults: list[dict], violations: list[str]) -> dict:
    figures = {"soak_batches": ctx.config.batches, "soak_clips_per_batch": ctx.config.clips, "soak_seed": ctx.config.seed,
               "soak_wall_s": round(wall, 1), "soak_fault_kinds_scheduled": sum(row["scheduled"] > 0 for row in faults),
               "soak_fault_kinds_hit": sum(row["hit"] > 0 for row in faults),
               "soak_faults_hit": sum(row["hit"] for row in faults),
               "soak_faults_skipped": sum(row["skipped"] for row in faults)}
    figures |= {f"soak_faults_hit_{row['kind']}": row["hit"] for row in faults}
    figures |= {f"soak_{name}": value for name, value in checked.items()}
    figures["soak_storage_503_answers"] = ctx.proxy.counts["injected_503"]
    figures |= {f"soak_{name}": value for name, value in sorted(ctx.extra.items())}
    figures["soak_invariant_violations"] = len(violations)
    return figures


__all__ = ["SoakConfig", "SoakReport", "TERMINAL", "run_soak"]
