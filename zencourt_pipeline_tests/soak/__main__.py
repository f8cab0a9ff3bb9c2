"""`python -m zencourt_pipeline_tests.soak --batches N --seed S [--full]`: prints the schedule,
the fault log, one `violation: ...` line per broken invariant and `name: value` figures; exits
1 when an invariant is violated."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

from zencourt_pipeline_tests.soak.harness import SoakConfig, run_soak
from zencourt_pipeline_tests.soak.mutants import MUTANTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--full", action="store_true",
                        help="longer deadlines and latencies, 4 clips a batch, more faults, a real database restart")
    parser.add_argument("--clips", type=int, default=None, help="clips per batch (default 2, 4 with --full)")
    parser.add_argument("--db-restart", choices=["terminate", "restart"], default=None,
                        help="restart: the soak runs a throwaway cluster of its own and restarts it for real (the "
                             "default where PostgreSQL's server binaries are); terminate: pg_terminate_backend of the "
                             "soak databases' connections")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait for every batch to end")
    parser.add_argument("--mutant", choices=sorted(MUTANTS), default=None,
                        help="run the processes with a seeded regression (soak/mutants): the soak must fail")
    parser.add_argument("--keep", type=Path, default=None, help="work directory to keep (logs), instead of a temp dir")
    args = parser.parse_args()
    config = SoakConfig.for_run(args.batches, args.seed, args.full, args.db_restart)
    if args.clips:
        config.clips = args.clips
    config.timeout_s = args.timeout
    config.mutant = args.mutant
    # a SIGTERM (kill, a CI timeout) unwinds like Ctrl-C: processes stopped, databases dropped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        report = run_soak(args.keep, config)
    else:
        with tempfile.TemporaryDirectory(prefix="zencourt-soak-") as tmp:
            report = run_soak(Path(tmp), config)
    for line in report.lines():
        print(line)
    if args.mutant:
        print(f"mutant {args.mutant}: bit {len(report.bites)} times; "
              + (f"caught by {len(report.violations)} violation(s)" if report.violations else "NOT CAUGHT"))
    sys.exit(1 if report.violations else 0)


if __name__ == "__main__":
    main()
