import dagster as dg

# One dynamic partition per video_gen_batch.id ([A-Za-z0-9_-]{1,64}: safe for UI selection and backfills).
batch_partitions = dg.DynamicPartitionsDefinition(name="batches")
