"""Batch routes (API key): pick up now, cancel, status."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from starlette.concurrency import run_in_threadpool

from zencourt_pipeline.db.records import Batch, Job
from zencourt_pipeline.db.spend import SpendLedger
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.service.auth import require_api_key
from zencourt_pipeline.service.errors import ApiError, ApiErrorCode
from zencourt_pipeline.service.models import BatchResponse, CancelResponse, GenerateResponse
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


def _not_found(batch_id: str | None) -> ApiError:
    return ApiError(404, ApiErrorCode.NOT_FOUND, f"no batch {batch_id!r}", {"batchId": batch_id})


# -- POST /video/generate ---------------------------------------------------------------------
@router.post("/generate", status_code=202, response_model=GenerateResponse, response_model_by_alias=True)
async def generate(request: Request) -> GenerateResponse:
    body = await read_json(request, GenerateRequest)
    db = request.app.state.db

    def pick_up() -> tuple[bool, Batch | None]:
        batch = db.get_batch(body.batchId)
        if batch is None:
            return False, None
        if db.request_pickup(body.batchId):
            return True, batch
        return False, db.get_batch(body.batchId)

    ok, batch = await run_in_threadpool(pick_up)
    if batch is None:
        raise _not_found(body.batchId)
    if not ok:
        raise ApiError(
            409,
            ApiErrorCode.BATCH_NOT_PENDING,
            f"batch {body.batchId!r} is {batch.status}, only pending batches can be picked up",
            {"batchId": body.batchId, "status": batch.status},
        )
    logger.info("batch pickup requested", extra={"batchId": body.batchId})
    return GenerateResponse(batch_id=body.batchId)


# -- POST /video/cancel -------------------------------------------------------------------------
@router.post("/cancel", response_model=CancelResponse, response_model_by_alias=True)
async def cancel(request: Request) -> CancelResponse:
    body = await read_json(request, CancelRequest)
    if body.batchId is None and body.listingId is None and body.jobIds is None:
        raise ApiError(400, ErrorCode.MISSING_REQUIRED_FIELD, "give one of batchId, listingId, jobIds")
    state = request.app.state
    db = state.db

    def do_cancel() -> tuple[list[Job], list[str]] | None:
        candidates: set[str] = set()
        if body.batchId is not None:
            if db.get_batch(body.batchId) is None:
                return None
            canceled = db.cancel(batch_id=body.batchId)
            candidates.add(body.batchId)
        elif body.listingId is not None:
            canceled = db.cancel(listing_id=body.listingId)
            candidates |= db.listing_batch_ids(body.listingId)
        else:
            canceled = db.cancel(job_ids=list(dict.fromkeys(body.jobIds or [])))
        candidates |= {job.batch_id for job in canceled}
        return canceled, db.canceled_batch_ids(candidates)

    result = await run_in_threadpool(do_cancel)
    if result is None:
        raise _not_found(body.batchId)
    canceled, batch_ids = result
    job_ids = [job.id for job in canceled]
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
    return CancelResponse(canceled=len(job_ids), job_ids=job_ids, batch_ids=batch_ids)


# -- GET /video/batches/{id} ------------------------------------------------------------------
@router.get("/batches/{batch_id}", response_model=BatchResponse, response_model_by_alias=True)
async def get_batch(batch_id: str, request: Request) -> BatchResponse:
    check_id(batch_id, "batchId")
    db = request.app.state.db

    def load() -> tuple[Batch | None, list[Job], SpendLedger | None]:
        batch = db.get_batch(batch_id)
        if batch is None:
            return None, [], None
        return batch, db.get_jobs(batch_id), db.spend_ledger(batch_id=batch_id)

    batch, jobs, spend = await run_in_threadpool(load)
    if batch is None:
        raise _not_found(batch_id)
    return BatchResponse.from_records(batch, jobs, spend, request.app.state.media_urls)
