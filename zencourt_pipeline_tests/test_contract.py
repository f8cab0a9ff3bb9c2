"""docs/contract.md is the living contract: every variable the code reads and every route the
service serves is in it (and every variable in the README's configuration table)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "zencourt_pipeline"
CONTRACT = (ROOT / "docs" / "contract.md").read_text()
README = (ROOT / "README.md").read_text()


def env_names() -> set[str]:
    """Every variable the code reads: `Settings.ENV` (config.py is the only reader, test_config.py)."""
    from zencourt_pipeline.config import Settings

    return set(Settings.ENV.values())


def test_every_variable_the_code_reads_is_in_the_contract_and_the_readme():
    names = env_names()
    assert {"DATABASE_URL", "ZENCOURT_MAX_DOWNLOAD_ATTEMPTS", "ZENCOURT_LOG_FORMAT", "MAX_UPLOAD_BYTES"} <= names
    assert sorted(n for n in names if f"`{n}`" not in CONTRACT) == []
    assert sorted(n for n in names if f"`{n}`" not in README) == []


def test_every_route_of_the_service_is_in_the_contract(tmp_path):
    from zencourt_pipeline.config import Settings
    from zencourt_pipeline.service.app import create_app

    app = create_app(Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'app.db'}"))
    routes = {(method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item}
    assert ("GET", "/health") in routes and ("POST", "/video/cancel") in routes
    def shape(text: str) -> str:  # path parameters compared by position, not name
        return re.sub(r"\{[^}]*\}", "{}", text)

    missing = sorted(f"{m} {p}" for m, p in routes if shape(f"`{m} {p}`") not in shape(CONTRACT))
    assert missing == []
