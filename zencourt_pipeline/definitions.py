"""The code location (workspace.yaml loads `zencourt_pipeline.definitions:defs`).

`defs` is a `@dg.definitions` function: Dagster calls it when it loads the code location, so
importing this module reads no environment and installs no log handler."""

import warnings

import dagster as dg

from zencourt_pipeline.config import Settings
from zencourt_pipeline.defs.alerts import dead_webhooks_sensor
from zencourt_pipeline.defs.assets import build_assets
from zencourt_pipeline.defs.executors import build_executor
from zencourt_pipeline.defs.jobs import all_jobs
from zencourt_pipeline.defs.orphans import orphaned_runs_sensor
from zencourt_pipeline.defs.resources import build_resources
from zencourt_pipeline.defs.retention import partition_retention_sensor
from zencourt_pipeline.defs.sensors import (
    clip_completions_sensor,
    intake_failure_sensor,
    pending_batches_sensor,
)
from zencourt_pipeline.observability.logging import install_package_handler, process_role


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """The code location for `settings` (the environment's when None): resources and the
    generation pool come from them, nothing from the environment at import."""
    settings = settings or Settings.from_env()
    return dg.Definitions(
        assets=build_assets(settings),
        jobs=all_jobs,
        sensors=[pending_batches_sensor, clip_completions_sensor, intake_failure_sensor]
        + [dead_webhooks_sensor, orphaned_runs_sensor, partition_retention_sensor],
        resources=build_resources(settings),
        # every run (sensor-requested, UI materializations, backfills) executes its steps in its
        # own process, or on Celery workers with ZENCOURT_EXECUTOR=celery (defs/executors.py)
        executor=build_executor(settings),
    )


# dagster.yaml's python_logs.dagster_handler_config (the JSON handler of run records) is beta in
# Dagster 1.13 and says so on every run: a deliberate choice, not news to the run's stderr.
warnings.filterwarnings("ignore", message="Handling yaml-defined logging configuration", category=dg.BetaWarning)

# Dagster's own processes (code server, run workers) start here: the package's records outside a
# run are written in zencourt's log format (inside a run, dagster.yaml's
# `python_logs.dagster_handler_config` handler writes them, with the run's events).
DAGSTER_ROLES = ("code-server", "run-worker", "dagster", "daemon", "webserver")


@dg.definitions
def defs() -> dg.Definitions:
    """The code location of the environment's `Settings`, built when Dagster loads it (never at
    import), with the package's log handler installed when this is one of Dagster's own processes
    (its role from `Settings.process_role` or argv)."""
    settings = Settings.from_env()
    if process_role(settings) in DAGSTER_ROLES:
        install_package_handler(settings=settings)
    return build_definitions(settings)
