"""What each stage does, free of Dagster: the assets in `defs/` are thin wrappers around this."""
