"""The README stays a five-minute read: at most 12,000 bytes, the two commands, a layout table
naming every folder and top-level module of the package, and links (to docs/ pages and their
headings) that resolve."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a markdown file (lower case, punctuation dropped, spaces as -)."""
    headings = re.findall(r"^#+ (.+)$", path.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_the_readme_is_short_and_keeps_the_two_commands():
    text = README.read_text()
    assert len(text.encode()) <= 12_000
    assert "make demo" in text and "make test" in text


def test_the_layout_table_names_every_folder_and_module_of_the_package():
    text = README.read_text()
    package = ROOT / "zencourt_pipeline"
    entries = {
        f"{p.name}/" if p.is_dir() else p.name
        for p in package.iterdir()
        if p.name != "__init__.py" and not p.name.startswith((".", "__pycache__")) and (p.is_dir() or p.suffix == ".py")
    }
    rows = {m for line in text.splitlines() if line.startswith("| `") for m in re.findall(r"^\| `([^`]+)`", line)}
    assert sorted(entries - rows) == []


def test_every_relative_link_of_the_readme_and_docs_resolves():
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            path = (page.parent / file_part).resolve() if file_part else page
            if not path.exists() or (anchor and path.suffix == ".md" and anchor not in anchors(path)):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


def test_the_api_section_lists_every_route_of_the_openapi_document():
    """Each `METHOD /path` of docs/openapi.json (HEAD aside: it is GET's) is in a row of the
    README's "HTTP API" table, and each row gives an example."""
    import json

    section = README.read_text().split("## HTTP API", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    def shape(route: str) -> str:
        return re.sub(r"\{[^}]+\}", "{}", route)  # `{id}` and `{batch_id}` name one parameter

    listed = {shape(route) for row in rows for route in re.findall(r"`((?:GET|POST|DELETE|PUT|PATCH) [^`]+)`", row.split(" | ")[0])}
    paths = json.loads((ROOT / "docs" / "openapi.json").read_text())["paths"]
    routes = {shape(f"{method.upper()} {path}") for path, ops in paths.items() for method in ops if method != "head"}
    assert sorted(routes - listed) == [] and sorted(listed - routes) == []
    assert all(row.split(" | ", 1)[1].strip(" |") for row in rows)
