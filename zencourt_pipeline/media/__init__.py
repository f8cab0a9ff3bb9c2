"""Pure, Dagster-free media functions: paths in, paths out."""
