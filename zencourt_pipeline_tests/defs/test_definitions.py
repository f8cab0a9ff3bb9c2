import importlib
import warnings

import dagster as dg


def test_code_location_loads_without_deprecation_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import zencourt_pipeline.definitions as module

        module = importlib.reload(module)
        defs = module.defs
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


def test_every_asset_is_described_for_the_ui():
    from zencourt_pipeline.definitions import defs

    for spec in defs.resolve_all_asset_specs():
        assert spec.description and spec.owners and spec.kinds and spec.group_name and spec.code_version
        assert spec.partitions_def is not None and spec.partitions_def.name == "batches"
