from zencourt_pipeline.defs.assets.composition import composed_video, normalized_clips
from zencourt_pipeline.defs.assets.generation import clip_tasks, generated_clips
from zencourt_pipeline.defs.assets.intake import listing_photos

pipeline_assets = [listing_photos, clip_tasks, generated_clips, normalized_clips, composed_video]
