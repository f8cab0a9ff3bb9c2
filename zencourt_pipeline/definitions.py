"""The code location (workspace.yaml loads `zencourt_pipeline.definitions:defs`)."""

import dagster as dg

from zencourt_pipeline.config import Settings
from zencourt_pipeline.defs.assets import pipeline_assets
from zencourt_pipeline.defs.jobs import batch_compose_job, batch_intake_job
from zencourt_pipeline.defs.resources import build_resources
from zencourt_pipeline.defs.sensors import (
    clip_completions_sensor,
    generation_reconciler_sensor,
    pending_batches_sensor,
)


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    return dg.Definitions(
        assets=pipeline_assets,
        jobs=[batch_intake_job, batch_compose_job],
        sensors=[pending_batches_sensor, generation_reconciler_sensor, clip_completions_sensor],
        resources=build_resources(settings),
    )


defs = build_definitions()
