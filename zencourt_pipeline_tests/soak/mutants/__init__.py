"""Seeded regressions the soak must catch (issue 25, point 6).

`make soak SOAK_MUTANT=<name>` (or `--mutant <name>`) starts every process of the topology with
this folder first on PYTHONPATH: its `sitecustomize.py` patches the product modules as they are
imported (`patches.py`), in the children only; the product code has no switch for it. Each
mutant logs a `MUTANT <name> bit: ...` line to stderr and a line to `$ZENCOURT_SOAK_MUTANT_LOG`
whenever it changes behaviour, so a run shows that it bit; the soak must then fail, naming the
invariant that caught it.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> what it breaks (and the invariant expected to catch it)
MUTANTS = {
    "resend_ambiguous_create": "re-sends a paid create after an ambiguous answer (paid once)",
    "skip_provider_cancel": "marks canceled tasks stopped without calling the provider (cancel stops spend)",
    "drop_completions": "acknowledges one recorded completion in four and loses it for good (expected outcomes)",
    "second_terminal_webhook": "emits a second terminal webhook with a new id (one terminal event per batch)",
    "fallback_after_download_failure": "falls back to another provider when a finished task's output fails to "
    "download (paid once)",
    "stuck_batch": "leaves one batch processing forever (every batch ends)",
}


def child_env(name: str, log_path: Path) -> dict[str, str]:
    """The environment entries that make the soak's processes run mutant `name`."""
    if name not in MUTANTS:
        raise ValueError(f"unknown mutant {name!r}; one of {', '.join(sorted(MUTANTS))}")
    import os

    root = HERE.parents[2]  # the repository: zencourt_pipeline_tests importable in the children
    path = os.pathsep.join(p for p in (str(HERE), str(root), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "ZENCOURT_SOAK_MUTANT": name, "ZENCOURT_SOAK_MUTANT_LOG": str(log_path)}


def bites(log_path: Path) -> list[str]:
    """The bite lines the children wrote."""
    return log_path.read_text().splitlines() if log_path.exists() else []
