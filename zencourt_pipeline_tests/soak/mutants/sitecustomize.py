"""Loaded by every Python process the soak starts when it runs a mutant (this folder is put first on
the children's PYTHONPATH by the harness, never by product code): applies the mutant named by
ZENCOURT_SOAK_MUTANT to the product modules as they are imported (`soak/mutants/patches.py`)."""

import os

if os.environ.get("ZENCOURT_SOAK_MUTANT"):
    from zencourt_pipeline_tests.soak.mutants.patches import install

    install(os.environ["ZENCOURT_SOAK_MUTANT"])
