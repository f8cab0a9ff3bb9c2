"""Dagster definitions: thin assets over `zencourt_pipeline.pipeline`, sensors, resources."""
