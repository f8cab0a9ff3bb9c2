import dagster as dg

from zencourt_pipeline.pipeline.actions import RECOMPOSE_JOB, REGENERATE_JOB

# The jobs take the code location's executor (defs/executors.py): in process by default (the steps
# of one batch run one after another, and no process is spawned per step), or Celery workers.
# Parallel work inside a step (normalizing clips) uses threads.
# Selecting an asset selects its asset checks too (photos_usable, clips_usable, video_matches_plan).
batch_intake_job = dg.define_asset_job(
    "batch_intake_job",
    selection=dg.AssetSelection.assets("listing_photos", "clip_tasks"),
    description="Take a new batch in: fetch and prepare its photos, submit its generation tasks.",
)

batch_compose_job = dg.define_asset_job(
    "batch_compose_job",
    selection=dg.AssetSelection.assets("generated_clips", "normalized_clips", "composed_video"),
    description="Collect the finished clips, normalize them and compose the listing video.",
)

# Clip-first: while some clips of a batch are still generating, the ones that arrived are
# collected and normalized (published, `clip.completed`) by a clips run of the completions sensor.
batch_clips_job = dg.define_asset_job(
    "batch_clips_job",
    selection=dg.AssetSelection.assets("generated_clips", "normalized_clips"),
    description="Collect and normalize (publish) the clips of a batch that arrived while others are still generating.",
)

# Operator actions, launched for one batch partition from the Launchpad.
batch_regenerate_job = dg.define_asset_job(
    REGENERATE_JOB,  # also launched over HTTP (pipeline/actions.py)
    selection=dg.AssetSelection.assets("clip_tasks"),
    description=(
        "Regenerate only some jobs of a batch: run config "
        '{"ops": {"clip_tasks": {"config": {"regenerate_job_ids": ["<job id>", ...]}}}}. '
        "Each named, finished job gets one new paid task (its old task is marked superseded); the "
        "completions sensor composes the batch again when they are done."
    ),
)

batch_recompose_job = dg.define_asset_job(
    RECOMPOSE_JOB,  # also launched over HTTP (pipeline/actions.py)
    selection=dg.AssetSelection.assets("composed_video"),
    description=(
        "Re-compose a batch from its existing clips (no generation): run config "
        '{"ops": {"composed_video": {"config": {"template": "classic", "orientation": "vertical"}}}}.'
    ),
)

all_jobs = [batch_intake_job, batch_compose_job, batch_clips_job, batch_regenerate_job, batch_recompose_job]
