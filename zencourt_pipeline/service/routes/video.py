"""Batch routes (API key): pick up now, cancel, status."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from starlette.concurrency import run_in_threadpool

from zencourt_pipeline.db.database import as_utc
from zencourt_pipeline.db.schema import TERMINAL_STATUSES, video_gen_batch
from zencourt_pipeline.db.spend import SpendLedger
from zencourt_pipeline.pipeline.spend import ledger_json
from zencourt_pipeline.service.auth import require_api_key
from zencourt_pipeline.service.errors import ApiError
from zencourt_pipeline.service.routes.common import Id, check_id, read_json

logger = logging.getLogger("zencourt_pipeline.service.video")
router = APIRouter(prefix="/video", dependencies=[Depends(require_api_key)])

MAX_CANCEL_JOB_IDS = 1000


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    batchId: Id


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    batchId: Id | None = None
    listingId: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    jobIds: Annotated[list[Id], Field(min_length=1, max_length=MAX_CANCEL_JOB_IDS)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> CancelRequest:
        given = [name for name in ("batchId", "listingId", "jobIds") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"give exactly one of batchId, listingId, jobIds (got {', '.join(given)})")
        return self


# -- POST /video/generate ---------------------------------------------------------------------
@router.post("/generate", status_code=202)
async def generate(request: Request) -> JSONResponse:
    body = await read_json(request, GenerateRequest)
    db = request.app.state.db

    def pick_up() -> tuple[bool, dict | None]:
        batch = db.get_batch(body.batchId)
        if batch is None:
            return False, None
        if db.request_pickup(body.batchId):
            return True, batch
        return False, db.get_batch(body.batchId)

    ok, batch = await run_in_threadpool(pick_up)
    if batch is None:
        raise ApiError(404, "NOT_FOUND", f"no batch {body.batchId!r}", {"batchId": body.batchId})
    if not ok:
        raise ApiError(
            409,
            "BATCH_NOT_PENDING",
            f"batch {body.batchId!r} is {batch['status']}, only pending batches can be picked up",
            {"batchId": body.batchId, "status": batch["status"]},
        )
    logger.info("batch pickup requested", extra={"batchId": body.batchId})
    return JSONResponse({"success": True, "batchId": body.batchId, "status": "pending"}, status_code=202)


# -- POST /video/cancel -------------------------------------------------------------------------
def _canceled_batch_ids(db, candidates: set[str]) -> list[str]:
    if not candidates:
        return []
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.select(video_gen_batch.c.id).where(
                video_gen_batch.c.id.in_(sorted(candidates)), video_gen_batch.c.status == "canceled"
            )
        )
        return sorted(row.id for row in rows)


def _listing_batch_ids(db, listing_id: str) -> set[str]:
    with db.engine.connect() as conn:
        rows = conn.execute(sa.select(video_gen_batch.c.id).where(video_gen_batch.c.listing_id == listing_id))
        return {row.id for row in rows}


@router.post("/cancel")
async def cancel(request: Request) -> dict:
    body = await read_json(request, CancelRequest)
    if body.batchId is None and body.listingId is None and body.jobIds is None:
        raise ApiError(400, "MISSING_REQUIRED_FIELD", "give one of batchId, listingId, jobIds")
    state = request.app.state
    db = state.db

    def do_cancel() -> tuple[list[dict], list[str]] | None:
        candidates: set[str] = set()
        if body.batchId is not None:
            if db.get_batch(body.batchId) is None:
                return None
            canceled = db.cancel(batch_id=body.batchId)
            candidates.add(body.batchId)
        elif body.listingId is not None:
            canceled = db.cancel(listing_id=body.listingId)
            candidates |= _listing_batch_ids(db, body.listingId)
        else:
            canceled = db.cancel(job_ids=list(dict.fromkeys(body.jobIds or [])))
        candidates |= {job["batch_id"] for job in canceled}
        return canceled, _canceled_batch_ids(db, candidates)

    result = await run_in_threadpool(do_cancel)
    if result is None:
        raise ApiError(404, "NOT_FOUND", f"no batch {body.batchId!r}", {"batchId": body.batchId})
    canceled, batch_ids = result
    job_ids = [job["id"] for job in canceled]
    logger.info(
        "cancel requested",
        extra={
            "batchId": body.batchId,
            "listingId": body.listingId,
            "canceledJobs": len(job_ids),
            "canceledBatches": batch_ids,
        },
    )
    canceller = state.canceller
    if canceller is not None and (canceled or batch_ids):
        try:
            await run_in_threadpool(canceller, canceled, batch_ids)
        except Exception:
            # The cancellation is committed; provider tasks / runs that could not be stopped
            # finish on their own and their results are discarded.
            logger.exception(
                "canceller failed", extra={"canceledJobs": len(job_ids), "canceledBatches": batch_ids}
            )
    return {"success": True, "canceled": len(job_ids), "jobIds": job_ids, "batchIds": batch_ids}


# -- GET /video/batches/{id} ------------------------------------------------------------------
def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return as_utc(value).isoformat().replace("+00:00", "Z")
    return value


def progress(jobs: list[dict], batch_status: str) -> dict[str, Any]:
    counts = {status: 0 for status in ("completed", "failed", "canceled", "processing", "pending")}
    for job in jobs:
        if job["status"] in counts:
            counts[job["status"]] += 1
    total = len(jobs)
    finished = counts["completed"] + counts["failed"] + counts["canceled"]
    # share of clips that finished (completed, failed or canceled); the batch `status` says
    # whether the listing video is done too
    if total:
        percent = int(finished * 100 / total)
    else:
        percent = 100 if batch_status in TERMINAL_STATUSES else 0
    return {"total": total, **counts, "percent": percent}


def batch_json(batch: dict, jobs: list[dict], spend: SpendLedger | None = None) -> dict[str, Any]:
    """The status API's batch. `spend`: the batch's money ledger (`db.spend_ledger(batch_id=...)`)."""
    return {
        "id": batch["id"],
        "listingId": batch["listing_id"],
        "status": batch["status"],
        "orientation": batch["orientation"],
        "template": batch["template"],
        "title": batch["title"],
        "videoUrl": batch["video_url"],
        "thumbnailUrl": batch["thumbnail_url"],
        "error": batch["error"],
        "errorCode": batch["error_code"],
        # why a processing batch waits for an operator (CLIP_CHECK_FAILED), else null
        "blockedReason": batch["blocked_reason"],
        "createdAt": _iso(batch["created_at"]),
        "updatedAt": _iso(batch["updated_at"]),
        "progress": progress(jobs, batch["status"]),
        # what the batch's provider requests cost: {"usd", "tasks", "possiblyOrphaned", "byProvider", ...}
        "spend": ledger_json(spend or SpendLedger()),
        "jobs": [
            {
                "id": job["id"],
                "roomName": job["room_name"],
                "sortOrder": job["sort_order"],
                "status": job["status"],
                "provider": job["provider"],
                "providerTaskId": job["provider_task_id"],
                "videoUrl": job["video_url"],
                "thumbnailUrl": job["thumbnail_url"],
                "errorCode": job["error_code"],
                "errorMessage": job["error_message"],
                "createdAt": _iso(job["created_at"]),
                "updatedAt": _iso(job["updated_at"]),
            }
            for job in jobs
        ],
    }


@router.get("/batches/{batch_id}")
async def get_batch(batch_id: str, request: Request) -> dict:
    check_id(batch_id, "batchId")
    db = request.app.state.db

    def load() -> tuple[dict | None, list[dict], SpendLedger | None]:
        batch = db.get_batch(batch_id)
        if batch is None:
            return None, [], None
        return batch, db.get_jobs(batch_id), db.spend_ledger(batch_id=batch_id)

    batch, jobs, spend = await run_in_threadpool(load)
    if batch is None:
        raise ApiError(404, "NOT_FOUND", f"no batch {batch_id!r}", {"batchId": batch_id})
    return {"success": True, **batch_json(batch, jobs, spend)}
