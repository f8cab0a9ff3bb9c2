"""The reconciler's poll cycle does not grow with the tasks in flight the way one-at-a-time polling
does (issue 13 point 6): one tick polls every awaiting task, `poll_workers` at a time against a
slow Runway over a real socket, each once, and records every completion."""

from __future__ import annotations

import time
from collections import Counter

from zencourt_pipeline.pipeline.reconcile import reconcile_tasks
from zencourt_pipeline.providers.chain import ProviderChain
from zencourt_pipeline_tests.fakes.fixtures import fake_runway, photo  # noqa: F401
from zencourt_pipeline_tests.pipeline.test_task_cost import _submitted_task


def test_one_tick_polls_every_task_concurrently_once_and_records_each_completion(app_db, fake_runway, photo):  # noqa: F811
    tasks = [_submitted_task(app_db, fake_runway, photo, f"rc{i}")[1] for i in range(24)]
    generator, _ = _submitted_task(app_db, fake_runway, photo, "rc-last")
    time.sleep(0.1)  # past the fake's 0.05 s task latency: every task has SUCCEEDED
    fake_runway.poll_delay = 0.3  # a slow API: 25 polls one after another would take 7.5 s
    chain = ProviderChain({"runway": generator}, ["runway"])
    report = reconcile_tasks(app_db, chain, webhook_overdue_after={}, poll_workers=8)
    assert (report.polled, report.recorded, report.errors) == (25, 25, 0)
    assert fake_runway.max_polls_in_flight == 8  # eight in flight: the pool was used, never more
    assert set(Counter(fake_runway.polls_by_task).values()) == {1}  # each task asked once
    recorded = {c.task_id for i in range(24) for c in app_db.completions.completions_for_batch(f"rc{i}")}
    assert recorded == {task.task_id for task in tasks}
    # stamped polled: the next tick (within Runway's 5 s spacing) asks nothing again
    again = reconcile_tasks(app_db, chain, webhook_overdue_after={}, poll_workers=8)
    assert again.polled == 0 and fake_runway.counts["poll"] == 25


def test_tasks_a_tick_ran_out_of_time_for_are_polled_first_in_the_next(app_db, fake_runway, photo):  # noqa: F811
    """A tick whose budget ends before every poll went out clears the stamp of the ones it never
    asked: the next tick (within Runway's 5 s spacing) polls exactly those, not nothing."""
    for i in range(6):
        generator, _ = _submitted_task(app_db, fake_runway, photo, f"rb{i}")
    time.sleep(0.1)
    fake_runway.poll_delay = 0.5
    chain = ProviderChain({"runway": generator}, ["runway"])
    first = reconcile_tasks(app_db, chain, webhook_overdue_after={}, poll_workers=2, budget_seconds=0.2)
    assert first.polled == 2 and first.recorded == 2  # the budget ended with the first two in flight
    fake_runway.poll_delay = 0.0
    second = reconcile_tasks(app_db, chain, webhook_overdue_after={}, poll_workers=2)
    assert (second.polled, second.recorded) == (4, 4)  # the other four, each asked once
    assert set(Counter(fake_runway.polls_by_task).values()) == {1}
