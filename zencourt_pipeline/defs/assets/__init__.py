from zencourt_pipeline.defs.assets.analytics import provider_daily_stats
from zencourt_pipeline.defs.assets.composition import composed_video, normalized_clips
from zencourt_pipeline.defs.assets.generation import clip_tasks, generated_clips
from zencourt_pipeline.defs.assets.intake import listing_photos

# the batch-partitioned pipeline, in lineage order
pipeline_assets = [listing_photos, clip_tasks, generated_clips, normalized_clips, composed_video]
analytics_assets = [provider_daily_stats]
all_assets = pipeline_assets + analytics_assets
