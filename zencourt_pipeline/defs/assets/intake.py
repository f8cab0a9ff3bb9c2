import dagster as dg

from zencourt_pipeline.defs.assets.common import OWNERS, STEP_RETRY, count, load_batch, scratch_dir, table
from zencourt_pipeline.defs.partitions import batch_partitions
from zencourt_pipeline.defs.resources import AppDatabaseResource, GeneratorsResource, StorageResource
from zencourt_pipeline.pipeline.intake import BatchRejected, ingest_photos, reject_batch, validate_batch


@dg.asset(
    partitions_def=batch_partitions,
    group_name="intake",
    kinds={"python", "pillow"},
    owners=OWNERS,
    code_version="1",
    tags={"stage": "intake"},
    retry_policy=STEP_RETRY,
)
def listing_photos(
    context: dg.AssetExecutionContext,
    app_db: AppDatabaseResource,
    storage: StorageResource,
    generators: GeneratorsResource,
) -> dg.MaterializeResult:
    """The batch's listing photos, fetched (SSRF-safe), EXIF-oriented, converted to RGB JPEG,
    size-bounded and stored under `batches/<batch>/photos/`. A photo that cannot be used fails
    its own job (error code and message in video_gen_jobs); the rest of the batch goes on."""
    db = app_db.get()
    batch, jobs = load_batch(context, db)
    try:
        validate_batch(batch, jobs)
    except BatchRejected as exc:
        reject_batch(db, batch["id"], jobs, exc)
        raise dg.Failure(
            f"batch rejected at intake: {exc.code}: {exc.message}",
            metadata={"error_code": exc.code},
            allow_retries=False,
        ) from exc
    if batch["status"] == "pending":
        db.start_batch(batch["id"])
    with scratch_dir("intake") as work:
        results = ingest_photos(db, storage.get(), batch, jobs, work, generators.fetch_policy())
    ready = count(results, "ready")
    if ready == 0:
        db.finish_batch(batch["id"], "failed", error="no usable photo in the batch")
        raise dg.Failure("no usable photo in the batch", metadata={"photos": table(results)}, allow_retries=False)
    return dg.MaterializeResult(
        metadata={
            "photos_total": len(results),
            "photos_ready": ready,
            "photos_failed": count(results, "failed"),
            "orientation": batch["orientation"],
            "listing_id": batch["listing_id"],
            "photos": table(results),
        }
    )
