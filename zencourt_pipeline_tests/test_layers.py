"""The package's layers (issue 26): `lint-imports` (import-linter) checks the contracts of
pyproject.toml's `[tool.importlinter]`: entry points over `defs`/`service`, over `pipeline`, over
the adapters (providers, storage, db, net, media), over `config`, over `domain`, over `errors`, every
child package in a layer (exhaustive), and no import cycle between the modules of any package. Run
here so that `make test` (and CI) enforces them."""

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
    # exhaustive: every child of the package is in a layer (a new package cannot dodge the contract)
    assert by_id["layers"]["exhaustive"] is True and not by_id["layers"].get("exhaustive_ignores")


def test_every_exemption_says_why():
    """An `ignore_imports` entry (an import the contracts let through) carries its one-line
    reason as a comment on its own line of pyproject.toml."""
    text = (ROOT / "pyproject.toml").read_text()
    exempted = [import_ for contract in contracts() for import_ in contract.get("ignore_imports", [])]
    lines = text.splitlines()
    for import_ in exempted:
        (line,) = [line for line in lines if f'"{import_}"' in line]
        assert "#" in line.split(f'"{import_}"', 1)[1], f"no reason given for the exemption {import_}"


def test_lint_imports_keeps_every_contract():
    binary = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run(
        [str(binary), "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Contracts: {len(contracts())} kept, 0 broken." in proc.stdout, proc.stdout


def test_no_module_imports_itself_through_others():
    """Stricter than `acyclic_siblings`: no cycle between any two modules at all (a package's
    `__init__` and its own children included), every import counted (grimp: import-linter's graph)."""
    import grimp

    graph = grimp.build_graph("zencourt_pipeline", cache_dir=None)
    cyclic = sorted(
        module
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if imported != module and graph.chain_exists(importer=imported, imported=module)
    )
    assert cyclic == []
