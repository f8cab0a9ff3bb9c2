"""The code location (workspace.yaml loads `zencourt_pipeline.definitions:defs`)."""

import dagster as dg

from zencourt_pipeline.config import Settings
from zencourt_pipeline.defs.assets import all_assets
from zencourt_pipeline.defs.jobs import all_jobs
from zencourt_pipeline.defs.resources import build_resources
from zencourt_pipeline.defs.sensors import (
    clip_completions_sensor,
    generation_reconciler_sensor,
    intake_failure_sensor,
    pending_batches_sensor,
)


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    return dg.Definitions(
        assets=all_assets,
        jobs=all_jobs,
        sensors=[pending_batches_sensor, generation_reconciler_sensor, clip_completions_sensor, intake_failure_sensor],
        resources=build_resources(settings),
        # runs launched from the UI (materialize, backfills) execute their steps in one process,
        # like the jobs above: a batch's steps run one after another anyway
        executor=dg.in_process_executor,
    )


defs = build_definitions()
