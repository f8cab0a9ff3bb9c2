import importlib
import warnings

import dagster as dg


def test_code_location_loads_without_deprecation_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import zencourt_pipeline.definitions as module

        module = importlib.reload(module)
        defs = module.defs()
        graph = defs.resolve_asset_graph()
        for job in defs.resolve_all_job_defs():
            assert job.name
    ours = [
        w for w in caught
        if issubclass(w.category, (DeprecationWarning, dg.BetaWarning, dg.PreviewWarning, UserWarning))
        and ("zencourt_pipeline" in str(w.filename) or "dagster" in str(w.filename))
    ]
    assert ours == [], [str(w.message) for w in ours]
    order = [key.to_user_string() for key in graph.toposorted_asset_keys]
    contract = ["listing_photos", "generated_clips", "normalized_clips", "composed_video"]
    assert [key for key in order if key in contract] == contract


BATCH_ASSETS = ["listing_photos", "clip_tasks", "generated_clips", "normalized_clips", "composed_video"]


def test_every_asset_is_described_for_the_ui():
    from zencourt_pipeline.definitions import defs

    specs = {spec.key.to_user_string(): spec for spec in defs().resolve_all_asset_specs()}
    assert sorted(specs) == sorted(BATCH_ASSETS + ["provider_daily_stats"])
    for name, spec in specs.items():
        assert spec.description and spec.owners and spec.kinds and spec.group_name and spec.code_version, name
        assert all(owner.startswith("team:") for owner in spec.owners), spec.owners
        assert spec.tags.get("stage"), name
        if name in BATCH_ASSETS:
            assert spec.partitions_def is not None and spec.partitions_def.name == "batches"
        else:
            assert spec.partitions_def is None and spec.group_name == "analytics"


def test_backfills_run_one_batch_per_run():
    """No backfill_policy on a partitioned asset = one run per partition (Dagster's default, the
    documented choice: `backfill_policy=` on @asset is beta in 1.13)."""
    from zencourt_pipeline.definitions import defs

    graph = defs().resolve_asset_graph()
    for name in BATCH_ASSETS:
        assert graph.get(dg.AssetKey(name)).backfill_policy is None


def test_asset_checks_and_which_block():
    from zencourt_pipeline.definitions import defs

    graph = defs().resolve_asset_graph()
    checks = {(key.asset_key.to_user_string(), key.name): graph.get_check_spec(key) for key in graph.asset_check_keys}
    assert set(checks) == {
        ("listing_photos", "photos_usable"),
        ("normalized_clips", "clips_usable"),
        ("composed_video", "video_matches_plan"),
        ("composed_video", "platform_ready"),
    }
    assert sorted(name for name, spec in checks.items() if spec.blocking) == [
        ("composed_video", "platform_ready"),
        ("normalized_clips", "clips_usable"),
    ]
    assert all(spec.description for spec in checks.values())


def test_only_the_analytics_asset_is_automated():
    from zencourt_pipeline.definitions import defs

    automated = [
        spec.key.to_user_string() for spec in defs().resolve_all_asset_specs() if spec.automation_condition is not None
    ]
    assert automated == ["provider_daily_stats"]
    jobs = {job.name for job in defs().resolve_all_job_defs()}
    assert {"batch_intake_job", "batch_compose_job", "batch_regenerate_job", "batch_recompose_job"} <= jobs


def test_the_package_handler_is_installed_when_dagster_loads_the_location(monkeypatch):
    """Importing the module installs nothing; loading the location in one of Dagster's processes
    (the role from ZENCOURT_PROCESS_ROLE here) installs the package's handler."""
    import logging

    import zencourt_pipeline.definitions as module
    from zencourt_pipeline.observability import logging as obs

    package = logging.getLogger("zencourt_pipeline")
    before = list(package.handlers)

    def ours() -> list[logging.Handler]:
        return [h for h in package.handlers if getattr(h, "_zencourt_package", False)]

    monkeypatch.setattr(obs, "_role", None)
    try:
        package.handlers[:] = [h for h in before if h not in ours()]
        importlib.reload(module)
        assert ours() == []
        monkeypatch.setenv("ZENCOURT_PROCESS_ROLE", "code-server")
        module.defs()
        assert len(ours()) == 1
    finally:
        package.handlers[:] = before
