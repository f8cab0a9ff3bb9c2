"""What the soak harness, its faults and its invariants share: the plan and the running context."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

PROMPT_RE = re.compile(r"(soak-\d{4}):(\d+) ")
TERMINAL = frozenset({"completed", "failed", "canceled"})


def prompt_of(batch_id: str, index: int) -> str:
    return f"{batch_id}:{index} slow push-in"


def job_of_prompt(prompt: str | None) -> str | None:
    """The job id a provider request was made for (prompts are `<batch>:<index> ...`)."""
    match = PROMPT_RE.search(prompt or "")
    return f"{match[1]}-{match[2]}" if match else None


@dataclass
class SoakConfig:
    batches: int = 10
    clips: int = 2
    seed: int = 1
    full: bool = False
    # restart: a real restart of the soak's own cluster (soak/cluster.py); terminate:
    # pg_terminate_backend of the soak databases' connections (where no server binaries are)
    db_restart: str = "restart"
    # sized to the slowest recoverable path measured on a loaded 2-core CI machine: a job that times
    # out is a violation (only the faults that hit it may fail it). CI at stop 31, job soak-0009-0:
    # intake retried through the 30 s storage outage, Runway submitted at +95.6 s, its output served
    # broken (INVALID_OUTPUT at +100.2 s), fal submitted through the fal 5xx storm at +171.8 s and
    # answered at +182.9 s, while a 150 s deadline fired at +175.7 s. 240 s covers that path with
    # 55 s to spare; the tasks of cancel targets run 20-25 s
    generation_deadline_s: float = 240.0
    composition_deadline_s: float = 60.0
    fal_webhook_overdue_s: float = 8.0
    latency: tuple[float, float] = (1.0, 2.5)
    runway_failure_rate: float = 0.15
    insert_spread_s: float = 12.0  # batches are inserted over this many seconds
    fault_window_s: float = 45.0  # faults land in [2 s, this] after the first insert
    quota_batches: int = 3  # batches of one workspace inserted at once, over its quota
    # how long a cancel waits for a provider task of its jobs before it goes anyway (the full
    # mode's 100 batches queue their intake runs for minutes)
    cancel_wait_s: float = 120.0
    extra_faults: int = 0  # random faults on top of one of each kind
    timeout_s: float | None = None  # waiting for terminal batches; default: deadlines + slack
    mutant: str | None = None  # a seeded regression applied to the processes (soak/mutants)
    faults: bool = True  # False: no fault schedule, no failing scripts (a mutant alone must fail the run)

    @classmethod
    def for_run(cls, batches: int, seed: int, full: bool, db_restart: str | None = None) -> SoakConfig:
        from zencourt_pipeline_tests.soak.cluster import OwnCluster

        db_restart = db_restart or ("restart" if OwnCluster.available() else "terminate")
        if not full:
            return cls(batches=batches, seed=seed, db_restart=db_restart)
        return cls(
            batches=batches, clips=4, seed=seed, full=True, db_restart=db_restart,
            generation_deadline_s=900.0, composition_deadline_s=600.0, fal_webhook_overdue_s=20.0,
            latency=(2.0, 6.0), insert_spread_s=max(30.0, batches * 2.0),
            fault_window_s=max(120.0, batches * 2.0 + 60.0), quota_batches=5, extra_faults=max(0, batches // 3),
            cancel_wait_s=600.0,
        )

    @property
    def workspace_quota(self) -> int:
        """Clips the quota workspace may have: all its batches but one fit, the last only half."""
        return self.clips * (self.quota_batches - 1) + self.clips // 2


@dataclass
class BatchPlan:
    id: str
    listing_id: str
    at: float  # seconds after the start of the soak it is inserted
    workspace_id: str | None = None

    def job_ids(self, clips: int) -> list[str]:
        return [f"{self.id}-{index}" for index in range(clips)]


@dataclass
class CancelRecord:
    kind: str  # batch | listing | jobs
    target: Any
    sent_at: float  # monotonic, before the request
    answered_at: float  # monotonic, after the answer (the cancel is committed by then)
    status: int
    job_ids: list[str] = field(default_factory=list)
    batch_ids: list[str] = field(default_factory=list)
    pending_tasks: list[str] = field(default_factory=list)  # provider tasks the answer says are not stopped


@dataclass
class SoakContext:
    config: SoakConfig
    topo: Any
    runway: Any
    fal: Any
    receiver: Any
    proxy: Any
    storage: Any  # B2Storage straight to moto (not through the fault proxy)
    admin: Any  # AUTOCOMMIT engine on the postgres database
    db_names: list[str]
    cluster: Any = None  # the soak's own PostgreSQL cluster (soak/cluster.py), when it runs one
    plans: list[BatchPlan] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    applied: Counter = field(default_factory=Counter)  # fault kind -> events armed (not yet a hit)
    skipped: Counter = field(default_factory=Counter)  # fault kind -> events that could not be applied
    skip_reasons: defaultdict = field(default_factory=lambda: defaultdict(list))  # fault kind -> stated reasons
    unexplained: Counter = field(default_factory=Counter)  # fault kind -> skips without a stated reason
    extra: Counter = field(default_factory=Counter)  # other figures (503s answered, restarts, ...)
    cancels: list[CancelRecord] = field(default_factory=list)
    disruptions: list[float] = field(default_factory=list)  # time.time() of process kills, database restarts
    late_prompts: set[str] = field(default_factory=set)
    lost_prompts: set[str] = field(default_factory=set)
    duplicate_prompts: set[str] = field(default_factory=set)
    bad_output_prompts: set[str] = field(default_factory=set)  # Runway serves their output truncated or not as MP4
    late_sent: set[str] = field(default_factory=set)
    down: set[str] = field(default_factory=set)  # processes a fault holds down (not supervised)
    log_lines: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return time.monotonic() - self.started

    def log(self, message: str) -> None:
        line = f"[{self.now():7.1f}s] {message}"
        with self.lock:
            self.log_lines.append(line)
        print(line, flush=True)

    @property
    def batch_ids(self) -> list[str]:
        return [plan.id for plan in self.plans]
