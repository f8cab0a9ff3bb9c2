"""`make soak`: the production topology under a seeded random schedule of faults, with the
invariants checked at the end (issue 11). See `harness.py` (the run), `faults.py` (the faults
and their schedule), `invariants.py` (the checks), `proxy.py` (storage 503s in front of moto).

    python -m zencourt_pipeline_tests.soak --batches 10 --seed 1          # the CI-sized run
    python -m zencourt_pipeline_tests.soak --batches 100 --seed 1 --full  # by hand
"""
