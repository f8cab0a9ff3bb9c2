"""Issue 11 soak, the CI-sized seeded version (`make soak` runs 100 batches by hand).

It replaces the 20-batch CI load run (issue 6; `make loadtest` still runs the 200-batch one):
10 batches of 2 clips on the production topology under every fault kind at least once, and
the load run's checks (no batch lost, every job terminal, no clip paid twice, fallbacks from
the injected Runway failures) on top of the soak invariants.
"""

from __future__ import annotations

import pytest

from zencourt_pipeline_tests.soak.faults import HITS
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
    assert report["soak_fault_kinds_scheduled"] == report["soak_fault_kinds_hit"] == len(HITS)
    assert report.violations == [], "\n".join(report.violations)
