"""Issue 6 load run, the CI-sized version (`make loadtest` runs 200 batches of 6 clips)."""

from __future__ import annotations

import pytest

from zencourt_pipeline_tests.load import run_load

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(900)]


def test_twenty_batches_on_the_production_topology_lose_nothing_and_pay_once(tmp_path):
    report = run_load(tmp_path, batches=20, clips=2, failure_rate=0.15, seed=11, timeout=480)
    print("\n".join(report.lines()))
    assert report.lost == 0 and report.jobs_terminal == report.jobs_total == 40
    assert report.duplicates == 0
    assert report.batches_completed == 20
    assert report.fallbacks >= 1  # the injected Runway failures came from fal
