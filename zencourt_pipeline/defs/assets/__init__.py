import dagster as dg

from zencourt_pipeline.config import Settings
from zencourt_pipeline.defs.assets.analytics import provider_daily_stats
from zencourt_pipeline.defs.assets.composition import composed_video, normalized_clips
from zencourt_pipeline.defs.assets.generation import clip_tasks, generated_clips, generation_assets
from zencourt_pipeline.defs.assets.intake import listing_photos

# the batch-partitioned pipeline, in lineage order (the provider-facing steps in the embedded
# default's pool: what tests materialize directly)
pipeline_assets = [listing_photos, clip_tasks, generated_clips, normalized_clips, composed_video]
analytics_assets = [provider_daily_stats]
all_assets = pipeline_assets + analytics_assets


def build_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    """Every asset of the code location, the provider-facing steps in the pool `settings` names."""
    pooled = {asset.key: asset for asset in generation_assets(settings.generation_pool)}
    return [pooled.get(asset.key, asset) for asset in all_assets]
