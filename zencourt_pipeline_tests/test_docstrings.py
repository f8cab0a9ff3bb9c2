"""Every public function of `pipeline/`, `db/`, `service/` and `defs/` that is not an override
has a docstring (issue 26 point 7), so the share cannot regress.

Public: the function's name and the names of the classes around it do not start with `_`;
functions nested in functions are not counted. An override is a method whose name a base class
of its class already defines (found on the imported class's MRO, so Dagster and pydantic hooks
such as `setup_for_execution` or `model_post_init` and implementations of a project protocol
are overrides); the base's own definition is what documents it. Alembic's `upgrade` /
`downgrade` in `db/migrations/versions/` are the revision protocol (the module docstring
describes the revision) and are counted as overrides. `python -m
zencourt_pipeline_tests.test_docstrings` prints the share per folder of the whole package.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "zencourt_pipeline"
REQUIRED = ("pipeline", "db", "service", "defs")
MIGRATION_HOOKS = {"upgrade", "downgrade"}


@dataclass(frozen=True)
class Function:
    path: Path
    qualname: str
    line: int
    documented: bool
    override: bool

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line} {self.qualname}"


def _module(path: Path):
    """The imported module of a package file, or None for alembic's scripts (not importable alone)."""
    relative = path.relative_to(ROOT).with_suffix("")
    if "migrations" in relative.parts:
        return None
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return importlib.import_module(".".join(parts))


def _is_override(module, class_path: list[str], name: str) -> bool:
    """Whether a base class of the (imported) class at `class_path` defines `name` too."""
    cls = module
    for part in class_path:
        cls = getattr(cls, part, None)
    if not isinstance(cls, type):
        return False
    return any(name in vars(base) for base in cls.__mro__[1:])


def functions(path: Path) -> Iterator[Function]:
    """The public functions and methods of one file, with whether each is documented and an override."""
    tree = ast.parse(path.read_text())
    module = _module(path)
    in_versions = "versions" in path.parts

    def walk(body: list[ast.stmt], class_path: list[str]) -> Iterator[Function]:
        for node in body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                yield from walk(node.body, [*class_path, node.name])
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_"):
                if class_path:
                    override = module is not None and _is_override(module, class_path, node.name)
                else:
                    override = in_versions and node.name in MIGRATION_HOOKS
                yield Function(
                    path, ".".join([*class_path, node.name]), node.lineno,
                    ast.get_docstring(node) is not None, override,
                )
            elif isinstance(node, ast.If | ast.Try):  # definitions under `if` / `try` at this level
                yield from walk(node.body + getattr(node, "orelse", []), class_path)

    yield from walk(tree.body, [])


def folder_functions(folder: str) -> list[Function]:
    """Every public function of a package folder (its subfolders included)."""
    return [f for path in sorted((PACKAGE / folder).rglob("*.py")) for f in functions(path)]


def test_every_public_function_of_the_core_folders_has_a_docstring():
    missing = [str(f) for folder in REQUIRED for f in folder_functions(folder) if not f.override and not f.documented]
    assert missing == []


def test_the_measure_sees_functions_and_overrides():
    found = {f.qualname: f for f in folder_functions("defs")}
    assert len(found) > 20
    overrides = [f for f in found.values() if f.override]
    assert any(f.qualname.endswith(".setup_for_execution") for f in overrides)


def report() -> None:
    """Print, per folder of the package, public non-override functions and the share without a docstring."""
    folders = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("__"))
    for folder in folders:
        counted = [f for f in folder_functions(folder) if not f.override]
        if counted:
            undocumented = sum(not f.documented for f in counted)
            print(f"{folder + '/':16} {len(counted):4} functions  {undocumented:4} undocumented  "
                  f"{100 * undocumented / len(counted):5.1f}% undocumented")
    top = [f for path in sorted(PACKAGE.glob("*.py")) for f in functions(path) if not f.override]
    if top:
        undocumented = sum(not f.documented for f in top)
        print(f"{'(top-level)':16} {len(top):4} functions  {undocumented:4} undocumented  "
              f"{100 * undocumented / len(top):5.1f}% undocumented")


if __name__ == "__main__":
    report()
