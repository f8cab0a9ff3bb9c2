"""The soak's threads: `Scheduler` applies the fault schedule at its moments (a cancel waits, in
its own thread, for a provider task of its jobs to be running); `LateWebhooks` delivers the fal
webhooks the scripts made late, after the reconciler's overdue poll or just before it."""

from __future__ import annotations

import json
import random
import threading
import time
from typing import Any

import httpx
import sqlalchemy as sa

from zencourt_pipeline_tests.soak.context import SoakContext, job_of_prompt
from zencourt_pipeline_tests.soak.faults import FAULTS, FaultEvent, Skip


def _open_job_ids(ctx: SoakContext) -> list[str]:
    with ctx.topo.db.db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id FROM video_gen_jobs WHERE status NOT IN ('completed','failed','canceled')"))
        return [row.id for row in rows]


CANCEL_RETARGETS = 3


class Scheduler(threading.Thread):
    """Applies the events at their moment (seconds after `ctx.started`) until stopped."""

    def __init__(self, ctx: SoakContext, events: list[FaultEvent]):
        super().__init__(name="soak-faults", daemon=True)
        self.ctx, self.events, self.stopping = ctx, events, threading.Event()

    def run(self) -> None:
        for event in self.events:
            while not self.stopping.is_set() and self.ctx.now() < event.at:
                self.stopping.wait(min(0.2, event.at - self.ctx.now()))
            if self.stopping.is_set():
                return
            if event.kind.startswith("cancel_"):
                # a cancel waits (in its own thread) for a provider task of its jobs to be running
                threading.Thread(target=self._apply, args=(event, True), daemon=True).start()
                continue
            self._apply(event)

    def _apply(self, event: FaultEvent, wait_in_flight: bool = False) -> None:
        if wait_in_flight:
            waited = self._wait_in_flight(event)
            self.ctx.log(f"fault {event.describe()}: waited {waited:.1f} s for a provider task of its jobs")
            if event.kind == "cancel_jobs":
                try:
                    self._retarget(event)
                except sa.exc.OperationalError as exc:  # the database is restarting: keep the target
                    self.ctx.log(f"fault {event.describe()}: retarget skipped ({type(exc).__name__})")
        if self.stopping.is_set():
            return
        try:
            FAULTS[event.kind](self.ctx, **event.params)
            if event.kind == "cancel_jobs":
                self._until_a_cancel_hits(event)
        except Skip as skip:
            self.ctx.skipped[event.kind] += 1
            self.ctx.skip_reasons[event.kind].append(str(skip))
            self.ctx.log(f"fault {event.describe()} skipped: {skip}")
            return
        except Exception as exc:  # noqa: BLE001 - reported as a skip without a stated reason
            self.ctx.skipped[event.kind] += 1
            self.ctx.unexplained[event.kind] += 1
            self.ctx.log(f"fault {event.describe()} raised {type(exc).__name__}: {exc}")
            return
        self.ctx.applied[event.kind] += 1
        self.ctx.log(f"fault {event.describe()} armed")

    def _until_a_cancel_hits(self, event: FaultEvent) -> None:
        """A job cancel that stopped nothing (its jobs ended between the retarget and the request,
        e.g. while the service restarted) is sent again, to another open job with a running
        provider task, up to `CANCEL_RETARGETS` times: the fault counts only where it hit."""
        for _ in range(CANCEL_RETARGETS):
            target = ",".join(event.params["job_ids"])
            answers = [r for r in self.ctx.cancels if r.kind == "jobs" and r.target == target]
            if self.stopping.is_set() or any(r.job_ids or r.batch_ids for r in answers):
                return
            try:
                self._retarget(event, force=True)
            except sa.exc.OperationalError as exc:
                self.ctx.log(f"fault {event.describe()}: retarget skipped ({type(exc).__name__})")
            self.stopping.wait(1.0)
            FAULTS[event.kind](self.ctx, **event.params)

    def _retarget(self, event: FaultEvent, force: bool = False) -> None:
        """A job cancel whose jobs all ended meanwhile (an ambiguous create failed them) goes to an
        open job that has a provider task running, outside the quota workspace: the cancel must
        find something to stop. `force`: retarget even if one of its jobs is still open (the
        cancel found nothing to stop there)."""
        open_jobs = set(_open_job_ids(self.ctx))
        if open_jobs & set(event.params["job_ids"]) and not force:
            return
        quota = {plan.id for plan in self.ctx.plans if plan.workspace_id}
        with self.ctx.runway._lock:
            running = [job_of_prompt(task.body.get("promptText")) for task in self.ctx.runway.tasks.values()]
        tried = set(event.params["job_ids"]) if force else set()
        for job in running:
            if job in open_jobs and job not in tried and job.rsplit("-", 1)[0] not in quota:
                self.ctx.log(f"fault {event.describe()}: its jobs ended, canceling {job} instead")
                event.params["job_ids"] = [job]
                return

    def _wait_in_flight(self, event: FaultEvent) -> float:
        """Wait until one of the cancel's jobs has a provider task at the fakes (at most
        `config.cancel_wait_s`): its tasks are long (CANCEL_TARGET_LATENCY), so the cancel finds them running."""
        jobs = set(event.params.get("job_ids") or [])
        for plan in self.ctx.plans:
            if plan.id == event.params.get("batch_id") or plan.listing_id == event.params.get("listing_id"):
                jobs.update(plan.job_ids(self.ctx.config.clips))
        started = time.monotonic()
        while not self.stopping.is_set() and time.monotonic() - started < self.ctx.config.cancel_wait_s:
            with self.ctx.runway._lock:
                prompts = [task.body.get("promptText") for task in self.ctx.runway.tasks.values()]
            with self.ctx.fal._lock:
                prompts += [req.body.get("prompt") for req in self.ctx.fal.requests.values()]
            if any(job_of_prompt(prompt) in jobs for prompt in prompts):
                break
            self.stopping.wait(0.2)
        return time.monotonic() - started


class LateWebhooks(threading.Thread):
    """Delivers the webhook of each `late` fal request (the fake's own is suppressed) well after
    the request completed: after the reconciler's overdue poll, or just before it."""

    def __init__(self, ctx: SoakContext, rng: random.Random):
        super().__init__(name="soak-late-webhooks", daemon=True)
        self.ctx, self.rng, self.stopping = ctx, rng, threading.Event()
        self.due: dict[str, float] = {}

    def run(self) -> None:
        fal, overdue = self.ctx.fal, self.ctx.config.fal_webhook_overdue_s
        while not self.stopping.wait(0.5):
            with fal._lock:
                requests = [r for r in fal.requests.values()
                            if r.body.get("prompt") in self.ctx.late_prompts and r.final != "canceled"]
                for req in requests:
                    if req.id not in self.due and req.id not in self.ctx.late_sent and fal.state_of(req.id) == "COMPLETED":
                        self.due[req.id] = time.monotonic() + self.rng.uniform(overdue * 0.5, overdue * 2.5)
            for req in requests:
                if req.id in self.due and time.monotonic() >= self.due[req.id] and req.webhook_url:
                    del self.due[req.id]
                    self.ctx.late_sent.add(req.id)
                    self._deliver(req)

    def _deliver(self, req: Any) -> None:
        fal = self.ctx.fal
        body = json.dumps(fal.webhook_body(req)).encode()
        headers = {"Content-Type": "application/json", **fal.sign_headers(body, req.id)}
        try:
            status = httpx.post(req.webhook_url, content=body, headers=headers, timeout=10).status_code
        except httpx.HTTPError as exc:
            status = f"{type(exc).__name__}"
        self.ctx.extra["fal_late_webhooks_sent"] += 1
        self.ctx.log(f"late fal webhook {req.id} ({req.body.get('prompt', '')[:16]}): {status}")
