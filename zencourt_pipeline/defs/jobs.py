import dagster as dg

# Steps of one batch run one after another: the in-process executor avoids a process spawn
# (and a Dagster import) per step. Parallel work inside a step (normalizing clips) uses threads.
batch_intake_job = dg.define_asset_job(
    "batch_intake_job",
    selection=dg.AssetSelection.assets("listing_photos", "clip_tasks"),
    executor_def=dg.in_process_executor,
    description="Take a new batch in: fetch and prepare its photos, submit its generation tasks.",
)

batch_compose_job = dg.define_asset_job(
    "batch_compose_job",
    selection=dg.AssetSelection.assets("generated_clips", "normalized_clips", "composed_video"),
    executor_def=dg.in_process_executor,
    description="Collect the finished clips, normalize them and compose the listing video.",
)
