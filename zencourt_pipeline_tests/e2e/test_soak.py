"""Issue 11 soak, the CI-sized seeded version (`make soak` runs 100 batches by hand).

It replaces the 20-batch CI load run (issue 6; `make loadtest` still runs the 200-batch one):
10 batches of 2 clips on the production topology under every fault kind at least once, and
the load run's checks (no batch lost, every job terminal, no clip paid twice, fallbacks from
the injected Runway failures) on top of the soak invariants.
"""

from __future__ import annotations

import pytest

from zencourt_pipeline_tests.soak.faults import SCRIPT_KINDS, scheduled_kinds
from zencourt_pipeline_tests.soak.harness import SoakConfig, run_soak

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(600)]


def test_ten_batches_under_seeded_faults_keep_every_invariant(tmp_path):
    config = SoakConfig.for_run(batches=10, seed=1, full=False)
    report = run_soak(tmp_path, config)
    print("\n".join(report.lines()))
    assert report["soak_lost"] == 0 and report["soak_jobs_terminal"] == report["soak_jobs_total"] == 20
    assert report["soak_duplicates"] == 0
    assert report["soak_fallbacks"] >= 1  # the injected Runway failures came from fal
    assert report["soak_batches_completed"] >= 1
    # every kind of fault was scheduled and hit at least once (counted where it hit, not where armed)
    expected_kinds = len(scheduled_kinds(config)) + len(SCRIPT_KINDS)
    assert report["soak_fault_kinds_scheduled"] == report["soak_fault_kinds_hit"] == expected_kinds
    assert report.violations == [], "\n".join(report.violations)


def test_a_seeded_regression_fails_the_soak_naming_the_invariant_that_caught_it(tmp_path):
    """The soak can fail: a mutant (a second terminal webhook with a new id, patched into the
    processes through sitecustomize, never a product flag) bites and the webhook invariant names it.
    Small and fault-free, so only the mutant can break an invariant."""
    config = SoakConfig(batches=2, clips=1, seed=3, quota_batches=0, faults=False, insert_spread_s=2.0,
                        mutant="second_terminal_webhook", timeout_s=150.0)
    report = run_soak(tmp_path, config)
    print("\n".join(report.lines()))
    assert report.bites, "the mutant never bit"
    assert report["soak_batches_completed"] == 2 and report["soak_duplicates"] == 0
    caught = [v for v in report.violations if "terminal event ids" in v]
    assert len(caught) == 2, report.violations  # one per batch: each got two terminal event ids
    assert all(v in caught for v in report.violations), report.violations
