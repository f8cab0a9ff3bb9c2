"""The package's layers (issue 26): `lint-imports` (import-linter) checks the contracts of
pyproject.toml's `[tool.importlinter]`: entry points over `defs`/`service`, over `pipeline`, over
the adapters (providers, storage, db, net, media), over `config`, over `domain`, over `errors`, and no import cycle
between the modules of any package. Run here so that `make test` (and CI) enforces them."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_the_layers_and_acyclic_contracts_are_declared():
    by_id = {contract["id"]: contract for contract in contracts()}
    assert by_id["layers"]["type"] == "layers" and by_id["acyclic"]["type"] == "acyclic_siblings"
    layers = by_id["layers"]["layers"]
    order = ["defs | service", "pipeline | notify", "config", "domain", "errors"]
    assert [layers.index(layer) for layer in order] == sorted(layers.index(layer) for layer in order)


def test_lint_imports_keeps_every_contract():
    binary = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run(
        [str(binary), "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Contracts: {len(contracts())} kept, 0 broken." in proc.stdout, proc.stdout
