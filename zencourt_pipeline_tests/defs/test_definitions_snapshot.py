"""A snapshot of the code location (issue 12, item 6): every asset spec, asset check spec, job and
sensor of `build_definitions(Settings(...embedded defaults...))`, compared with the committed
`snapshots/definitions.json`. A change to an asset's deps, pool, group, tags, code version,
automation condition, ... fails here with a diff until the snapshot is rewritten on purpose:

    ZENCOURT_UPDATE_SNAPSHOTS=1 pytest zencourt_pipeline_tests/defs/test_definitions_snapshot.py

and the rewritten file is committed with the change.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from zencourt_pipeline.config import Settings
from zencourt_pipeline.definitions import build_definitions

SNAPSHOT = Path(__file__).with_name("snapshots") / "definitions.json"
UPDATE_VARIABLE = "ZENCOURT_UPDATE_SNAPSHOTS"


def _condition(condition: dg.AutomationCondition | None) -> str | None:
    """An automation condition as text: its label, else its operator over its operands."""
    if condition is None:
        return None
    if condition.get_label():
        return condition.get_label()
    children = condition.children
    return condition.name if not children else f"{condition.name}({', '.join(_condition(c) for c in children)})"


def _partitions(partitions_def: dg.PartitionsDefinition | None) -> str | None:
    if partitions_def is None:
        return None
    return getattr(partitions_def, "name", None) or type(partitions_def).__name__


def snapshot(defs: dg.Definitions) -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    assets = {}
    for spec in sorted(defs.resolve_all_asset_specs(), key=lambda spec: spec.key.to_user_string()):
        assets[spec.key.to_user_string()] = {
            "deps": sorted(dep.asset_key.to_user_string() for dep in spec.deps),
            "group": spec.group_name,
            "kinds": sorted(spec.kinds),
            "owners": list(spec.owners),
            "tags": dict(sorted(spec.tags.items())),
            "code_version": spec.code_version,
            "pool": defs.resolve_assets_def(spec.key).op.pool,
            "automation_condition": _condition(spec.automation_condition),
            "partitions": _partitions(spec.partitions_def),
        }
    checks = {}
    for key in sorted(graph.asset_check_keys, key=lambda key: (key.asset_key.to_user_string(), key.name)):
        spec = graph.get_check_spec(key)
        checks[f"{key.asset_key.to_user_string()}:{key.name}"] = {
            "blocking": spec.blocking,
            "additional_deps": sorted(dep.asset_key.to_user_string() for dep in spec.additional_deps),
            "automation_condition": _condition(spec.automation_condition),
        }
    jobs = {}
    for job in sorted(defs.jobs or [], key=lambda job: job.name):
        jobs[job.name] = {
            "assets": sorted(key.to_user_string() for key in job.selection.resolve(graph)),
            "checks": sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in job.selection.resolve_checks(graph)),
        }
    sensors = {}
    for sensor in sorted(defs.sensors or [], key=lambda sensor: sensor.name):
        sensors[sensor.name] = {
            "type": sensor.sensor_type.value,
            "minimum_interval_seconds": sensor.minimum_interval_seconds,
            "default_status": sensor.default_status.value,
            "jobs": sorted(target.job_name for target in sensor.targets),
        }
    resources = {key: type(resource).__name__ for key, resource in sorted((defs.resources or {}).items())}
    return {"assets": assets, "asset_checks": checks, "jobs": jobs, "sensors": sensors, "resources": resources}


def _text(value: dict[str, Any]) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def embedded_defaults(tmp_path: Path) -> Settings:
    """The embedded defaults, whatever the environment says (Settings(), not Settings.from_env())."""
    return Settings(data_dir=tmp_path / "data")


def test_definitions_match_the_committed_snapshot(tmp_path):
    actual = _text(snapshot(build_definitions(embedded_defaults(tmp_path))))
    if os.environ.get(UPDATE_VARIABLE) == "1":
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(actual)
    expected = SNAPSHOT.read_text() if SNAPSHOT.exists() else ""
    if actual != expected:
        diff = "\n".join(
            difflib.unified_diff(
                expected.splitlines(), actual.splitlines(), f"{SNAPSHOT.name} (committed)", "build_definitions", lineterm=""
            )
        )
        pytest.fail(
            f"the definitions differ from {SNAPSHOT}:\n{diff}\n\n"
            f"If the change is intended, rewrite the snapshot with {UPDATE_VARIABLE}=1 and commit it.",
            pytrace=False,
        )


def test_the_snapshot_fails_on_a_changed_pool_or_deps(tmp_path):
    """The comparison above sees what matters: another pool or other deps give another snapshot."""
    settings = embedded_defaults(tmp_path)
    base = snapshot(build_definitions(settings))
    other_pool = snapshot(build_definitions(settings.model_copy(update={"generation_providers": ["runway", "local"]})))
    assert other_pool != base
    assert {name: spec["pool"] for name, spec in other_pool["assets"].items() if spec["pool"]} == {
        "clip_tasks": "runway_api",
        "generated_clips": "runway_api",
    }
    defs = build_definitions(settings)
    [analytics] = [asset for asset in defs.assets if asset.key == dg.AssetKey("provider_daily_stats")]
    fewer_deps = analytics.map_asset_specs(lambda spec: spec.replace_attributes(deps=["clip_tasks"]))
    changed = dg.Definitions(
        assets=[fewer_deps if asset is analytics else asset for asset in defs.assets],
        jobs=defs.jobs, sensors=defs.sensors, resources=defs.resources,
    )
    assert snapshot(changed)["assets"]["provider_daily_stats"]["deps"] == ["clip_tasks"]
    assert snapshot(changed) != base
