"""Configuration from one place (issue 26): `Settings` (zencourt_pipeline/config.py) is the only
reader of the environment, `Settings.ENV` names every variable it reads, and the README's
configuration table, docs/contract.md section 2 and docker/.env.example list exactly those."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from zencourt_pipeline.config import BenchSettings, Settings, setting_default

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "zencourt_pipeline"
# docker/.env.example also sets docker compose's own variables (the bundled Postgres and MinIO,
# the image, host ports): ${...} of docker-compose.yml or docker/dagster.yaml, never read by the code
COMPOSE_FILES = [ROOT / "docker" / "docker-compose.yml", ROOT / "docker" / "docker-compose.multi-host.yml",
                 ROOT / "docker" / "dagster.yaml"]
VARIABLE = re.compile(r"`([A-Z][A-Z0-9_]*[A-Z0-9])`")


def settings_names() -> set[str]:
    return set(Settings.ENV.values())


def table_names(text: str, heading: str) -> set[str]:
    """The backticked variables of the first column of the table under `heading`."""
    return {name for cells in table_rows(text, heading) for name in VARIABLE.findall(cells[0])}


def table_rows(text: str, heading: str) -> list[list[str]]:
    """The cells of each row of the table under `heading` (header and rule included)."""
    lines = text.splitlines()
    rows: list[list[str]] = []
    for line in lines[lines.index(heading) + 1 :]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))])
        elif rows or line.startswith("#"):
            break
    return rows


def test_every_field_is_read_from_one_variable():
    assert set(Settings.ENV) == set(Settings.model_fields)
    assert len(settings_names()) == len(Settings.ENV)  # no variable feeds two fields


def test_from_env_reads_the_variables_of_env():
    env = {
        "GENERATION_PROVIDERS": "runway, fal",
        "ENABLE_FINAL_COMPOSITION": "off",
        "MAX_UPLOAD_BYTES": "1000",
        "ZENCOURT_LOG_FORMAT": " TEXT ",
        "ZENCOURT_PROCESS_ROLE": "worker-7",
        "ZENCOURT_PROVIDER_RATES": '{"runway": {"usd_per_credit": 0.02}}',
        "PORT": "",  # empty: unset, the default applies
    }
    settings = Settings.from_env(env)
    assert settings.generation_providers == ["runway", "fal"] and settings.enable_final_composition is False
    assert settings.max_upload_bytes == 1000 and settings.log_format == "text"
    assert settings.process_role == "worker-7" and settings.provider_rates == {"runway": {"usd_per_credit": 0.02}}
    assert settings.port == 3001
    assert Settings.from_env({}).max_upload_bytes == 512 * 1024 * 1024


def test_only_from_env_reads_the_process_environment(monkeypatch, tmp_path):
    """`Settings()` is the embedded defaults and `from_env(env)` reads `env` only: the process's
    variables (ZENCOURT_DATA_DIR included) reach a Settings through `from_env()` alone."""
    monkeypatch.setenv("ZENCOURT_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("PORT", "4000")
    monkeypatch.chdir(tmp_path)
    for settings in (Settings(), Settings.from_env({})):
        assert settings.data_dir == (tmp_path / ".zencourt").resolve() and settings.port == 3001
    assert Settings.from_env().data_dir == (tmp_path / "env").resolve() and Settings.from_env().port == 4000


def test_an_invalid_variable_fails_unless_lenient():
    env = {"ZENCOURT_LOG_FORMAT": "xml", "MAX_UPLOAD_BYTES": "0", "LOG_LEVEL": "debug"}
    with pytest.raises(ValueError, match="log_format"):
        Settings.from_env(env)
    lenient = Settings.from_env(env, strict=False)  # what logging uses: a broken value is its default
    assert lenient.log_format is None and lenient.max_upload_bytes == 512 * 1024 * 1024
    assert lenient.log_level == "debug"


def test_bench_settings_are_read_by_config_too():
    bench = BenchSettings.from_env({"ZENCOURT_BENCH_QUICK": "1", "ZENCOURT_BENCH_DIR": "/tmp/x"})
    assert bench.quick and bench.work_dir == "/tmp/x"
    assert not BenchSettings.from_env({"ZENCOURT_BENCH_QUICK": "0"}).quick
    assert BenchSettings.from_env({}).postgres_url.startswith("postgresql")


def test_only_config_reads_the_environment():
    """`os.environ` / `os.getenv` (however imported) appear in config.py only (nothing else reads
    a variable)."""
    reader = re.compile(r"\bos\.(environ|getenv)\b|\bgetenv\(|^\s*from os import .*\b(environ|getenv)\b", re.M)
    readers = sorted(
        str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py") if reader.search(path.read_text())
    )
    assert readers == ["config.py"]


# imports every module of the package (not the Alembic environment, not `__main__`s) with
# os.environ recording the reads made by the package's own code; prints them
IMPORT_PROBE = """
import importlib, os, pkgutil, sys
package = os.path.join(sys.argv[1], "zencourt_pipeline") + os.sep
library = ("<frozen os>", "<frozen _collections_abc>", "os.py", "_collections_abc.py")
reads = []

class Recording(os._Environ):
    def __getitem__(self, key):
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.endswith(library):
            frame = frame.f_back
        if frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
            reads.append(f"{key} ({frame.f_code.co_filename}:{frame.f_lineno})")
        return super().__getitem__(key)

os.environ.__class__ = Recording
import zencourt_pipeline
modules = [m.name for m in pkgutil.walk_packages(zencourt_pipeline.__path__, "zencourt_pipeline.")
           if ".migrations" not in m.name and not m.name.endswith("__main__")]
for name in modules:
    importlib.import_module(name)
print(len(modules))
print("\\n".join(reads))
"""


def test_nothing_reads_the_environment_at_import():
    """Importing any module (the code location included: `defs` is built when Dagster loads it)
    reads no variable; `Settings.from_env()` is called by the entry points at run time."""
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, str(ROOT)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    count, *reads = proc.stdout.strip().splitlines()
    assert int(count) > 100 and reads == []


def test_the_readme_configuration_table_is_settings():
    readme = (ROOT / "README.md").read_text()
    assert table_names(readme, "## Configuration") == settings_names()


def test_the_contract_configuration_table_is_settings():
    contract = (ROOT / "docs" / "contract.md").read_text()
    assert table_names(contract, "## 2. Configuration (environment variables)") == settings_names()


def documented(value: object) -> str:
    """A default as the tables write it: `7200` for 7200.0, `true`, a list comma-separated."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return ",".join(value) if isinstance(value, list) else str(value)


@pytest.mark.parametrize(
    ("document", "heading"),
    [("README.md", "## Configuration"), ("docs/contract.md", "## 2. Configuration (environment variables)")],
)
def test_the_documented_defaults_are_the_settings_defaults(document, heading):
    """Where a row's default column gives one backticked value per variable that has a fixed default
    (in the order of its variables), each is `Settings`' default: the tables cannot go stale."""
    field_of = {name: field for field, name in Settings.ENV.items()}
    compared = 0
    for cells in table_rows((ROOT / document).read_text(), heading)[2:]:
        fixed = [
            field_of[name] for name in VARIABLE.findall(cells[0])
            if field_of[name] != "data_dir" and setting_default(field_of[name]) is not None
        ]  # data_dir: under the working directory; None: a default derived at run time, in words
        values = re.findall(r"`([^`]*)`", cells[-1])
        if fixed and len(values) == len(fixed):
            assert values == [documented(setting_default(field)) for field in fixed], cells
            compared += len(fixed)
    assert compared >= 15


def test_the_env_example_is_a_valid_configuration():
    """The values docker/.env.example sets are accepted by `Settings` as they are."""
    text = (ROOT / "docker" / ".env.example").read_text()
    values = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", text, re.MULTILINE))
    settings = Settings.from_env({name: value for name, value in values.items() if name in settings_names()})
    assert settings.executor == values["ZENCOURT_EXECUTOR"] and settings.storage_backend == values["STORAGE_BACKEND"]


def test_the_env_example_lists_every_setting_and_compose_variables_only():
    text = (ROOT / "docker" / ".env.example").read_text()
    listed = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))
    assert sorted(settings_names() - listed) == []
    compose = "\n".join(path.read_text() for path in COMPOSE_FILES)
    others = listed - settings_names()
    assert others, "the compose variables (DAGSTER_POSTGRES_PASSWORD, ...) are expected too"
    assert sorted(name for name in others if not re.search(rf"\b{name}\b", compose)) == []
