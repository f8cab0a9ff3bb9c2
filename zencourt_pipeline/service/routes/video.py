"""Batch routes (API key): pick up now (by job ids, batch or listing), cancel, status.

A workspace key (service/auth.py) reaches its workspace's batches only: a batch of another
workspace answers as an unknown one (404, its job ids `unknownJobIds`), never refused by name,
so nothing tells it exists; a listing's batches of other workspaces are left out.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from starlette.concurrency import run_in_threadpool

from zencourt_pipeline.db.records import Batch, Job
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.pipeline.cancel import CancelReport, unstopped
from zencourt_pipeline.service.auth import Principal, principal_of, require_api_key
from zencourt_pipeline.service.errors import ApiError, ApiErrorCode
from zencourt_pipeline.service.models import BatchResponse, CancelResponse, GeneratedBatch, GenerateResponse
from zencourt_pipeline.service.openapi import AUTH_ERRORS, JSON_BODY_ERRORS, body_of, errors
from zencourt_pipeline.service.routes.common import Id, check_id, read_json

logger = logging.getLogger("zencourt_pipeline.service.video")
router = APIRouter(prefix="/video", dependencies=[Depends(require_api_key)])

MAX_CANCEL_JOB_IDS = 1000


class TargetRequest(BaseModel):
    """What a generate or cancel names: exactly one of `batchId`, `listingId`, `jobIds`."""

    # the schema: exactly one of the three, each given non-null (null is taken as absent)
    model_config = ConfigDict(extra="ignore", json_schema_extra={
        "oneOf": [{"required": [name], "properties": {name: {"not": {"type": "null"}}}}
                  for name in ("batchId", "listingId", "jobIds")],
    })
    batchId: Id | None = None
    listingId: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    jobIds: Annotated[list[Id], Field(min_length=1, max_length=MAX_CANCEL_JOB_IDS)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TargetRequest:
        given = [name for name in ("batchId", "listingId", "jobIds") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"give exactly one of batchId, listingId, jobIds (got {', '.join(given)})")
        return self

    def require_one(self) -> None:
        """400 MISSING_REQUIRED_FIELD when none of the three is given."""
        if self.batchId is None and self.listingId is None and self.jobIds is None:
            raise ApiError(
                400,
                ErrorCode.MISSING_REQUIRED_FIELD,
                "give one of batchId, listingId, jobIds",
                {"errors": [{"field": name, "message": "give exactly one of batchId, listingId, jobIds"}
                            for name in ("batchId", "listingId", "jobIds")]},
            )


GenerateRequest = TargetRequest
CancelRequest = TargetRequest


def visible(db, principal: Principal, batch_ids: list[str]) -> list[str]:
    """The batch ids the caller may reach, in their order (all of them for the admin key)."""
    if principal.admin or not batch_ids:
        return batch_ids
    workspaces = db.catalog.batch_workspaces(batch_ids)
    return [batch_id for batch_id in batch_ids if batch_id in workspaces and principal.can_see(workspaces[batch_id])]


def _not_found(batch_id: str | None) -> ApiError:
    return ApiError(404, ApiErrorCode.NOT_FOUND, f"no batch {batch_id!r}", {"batchId": batch_id})


# -- POST /video/generate ---------------------------------------------------------------------
# The web app's call (the Node server's flow): it inserts a batch and its jobs, then names them
# here by job ids; `batchId` and `listingId` name batches directly. Only `pending` batches are
# made claimable now (the sensor also finds them by itself); a batch that is already processing
# or terminal is reported as it is, never restarted (regenerating failed or canceled jobs is an
# operator's action), so a late or retried call is not an error.
# Workspaces: with a workspace key, batches of another workspace are left out as unknown (their
# job ids in `unknownJobIds`, a `batchId` 404); the admin key reaches every batch.
@router.post(
    "/generate",
    status_code=202,
    response_model=GenerateResponse,
    response_model_by_alias=True,
    responses={200: {"model": GenerateResponse, "description": "every batch named is already taken (a replay)",
                     "headers": {"Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}, "required": True}}},
               **errors(*JSON_BODY_ERRORS, *AUTH_ERRORS, 404)},
    openapi_extra=body_of(TargetRequest),
)
async def generate(request: Request, response: Response) -> GenerateResponse:
    """`POST /video/generate`: make the pending batches of the given ids claimable now (202)."""
    body = await read_json(request, GenerateRequest)
    body.require_one()
    db = request.app.state.db
    principal = principal_of(request)

    def pick_up() -> tuple[list[tuple[Batch, list[str]]], list[str], list[str]]:
        covered: dict[str, list[str]] | None = None  # jobIds: {batch id: the call's job ids in it}
        unknown: list[str] = []
        if body.jobIds is not None:
            job_ids = list(dict.fromkeys(body.jobIds))
            covered = db.pickup.batch_ids_of_jobs(job_ids)
            covered = {batch_id: covered[batch_id] for batch_id in visible(db, principal, list(covered))}
            known = {job_id for ids in covered.values() for job_id in ids}
            unknown = [job_id for job_id in job_ids if job_id not in known]
            batch_ids = list(covered)
        elif body.batchId is not None:
            batch_ids = visible(db, principal, [body.batchId])
        else:
            batch_ids = visible(db, principal, sorted(db.cancels.listing_batch_ids(body.listingId)))
        requested = db.pickup.request_pickups(batch_ids)
        batches = db.pickup.batches_with_job_ids(batch_ids)  # oldest first, with all their job ids
        if covered is not None:  # the batches in the order the call named them, with its job ids
            by_id = {batch.id: batch for batch, _ in batches}
            batches = [(by_id[batch_id], covered[batch_id]) for batch_id in batch_ids if batch_id in by_id]
        return batches, requested, unknown

    batches, requested, unknown = await run_in_threadpool(pick_up)
    if not batches:  # 404 only when nothing the call names is known
        if body.batchId is not None:
            raise _not_found(body.batchId)
        details = {"listingId": body.listingId} if body.listingId is not None else {"unknownJobIds": unknown}
        raise ApiError(404, ApiErrorCode.NOT_FOUND, "no batch is known for what the call names", details)
    items = [
        GeneratedBatch(batch_id=batch.id, status=batch.status, job_ids=job_ids, pickup_requested=batch.id in requested)
        for batch, job_ids in batches
    ]
    if requested:
        response.status_code = 202
    else:  # every batch is already processing or terminal: the call was made before
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    logger.info(
        "generate: pickup requested" if requested else "generate: every batch already taken (replay)",
        extra={"batchIds": [item.batch_id for item in items], "pickedUp": requested, "unknownJobs": len(unknown)},
    )
    return GenerateResponse(
        batch_id=items[0].batch_id, status=items[0].status, batches=items, unknown_job_ids=unknown
    )


# -- POST /video/cancel -------------------------------------------------------------------------
@router.post(
    "/cancel",
    response_model=CancelResponse,
    response_model_by_alias=True,
    responses=errors(*JSON_BODY_ERRORS, *AUTH_ERRORS, 404),
    openapi_extra=body_of(TargetRequest),
)
async def cancel(request: Request) -> CancelResponse:
    """`POST /video/cancel`: cancel jobs by batch, listing or job ids, and their provider tasks."""
    body = await read_json(request, CancelRequest)
    body.require_one()
    state = request.app.state
    db = state.db
    principal = principal_of(request)

    def do_cancel() -> tuple[list[Job], list[str]] | None:
        candidates: set[str] = set()
        if body.batchId is not None:
            batch = db.batches.get_batch(body.batchId)
            if batch is None or not principal.can_see(batch.workspace_id):
                return None
            canceled = db.cancels.cancel(batch_id=body.batchId)
            candidates.add(body.batchId)
        elif body.listingId is not None and principal.admin:
            canceled = db.cancels.cancel(listing_id=body.listingId)
            candidates |= db.cancels.listing_batch_ids(body.listingId)
        elif body.listingId is not None:  # a workspace key: its workspace's batches of the listing
            batch_ids = visible(db, principal, sorted(db.cancels.listing_batch_ids(body.listingId)))
            canceled = [job for batch_id in batch_ids for job in db.cancels.cancel(batch_id=batch_id)]
            candidates |= set(batch_ids)
        else:
            job_ids = list(dict.fromkeys(body.jobIds or []))
            if not principal.admin:
                covered = db.pickup.batch_ids_of_jobs(job_ids)
                reachable = {job_id for batch_id in visible(db, principal, list(covered)) for job_id in covered[batch_id]}
                job_ids = [job_id for job_id in job_ids if job_id in reachable]
            canceled = db.cancels.cancel(job_ids=job_ids) if job_ids else []
        candidates |= {job.batch_id for job in canceled}
        return canceled, db.cancels.canceled_batch_ids(candidates)

    result = await run_in_threadpool(do_cancel)
    if result is None:
        raise _not_found(body.batchId)
    canceled, batch_ids = result
    logger.info(
        "cancel requested",
        extra={
            "batchId": body.batchId,
            "listingId": body.listingId,
            "canceledJobs": len(canceled),
            "canceledBatches": batch_ids,
        },
    )
    report = await run_in_threadpool(_stop_provider_work, state, canceled, batch_ids)
    return CancelResponse.from_report(canceled, batch_ids, report)


def _stop_provider_work(state, canceled: list[Job], batch_ids: list[str]) -> CancelReport:
    """Run the canceller on what was just canceled. The cancellation is committed whatever happens
    here; a provider task it could not stop is reported and stays live in the ledger, where the
    reconciler retries its cancel until the provider confirms."""
    if not canceled and not batch_ids:
        return CancelReport()
    if state.canceller is None:
        live = state.db.ledger.live_tasks_for_jobs([job.id for job in canceled])
        return CancelReport(unstopped=unstopped(live, "this service has no canceller: the reconciler cancels"))
    try:
        return state.canceller(canceled, batch_ids)
    except Exception as exc:  # noqa: BLE001 - the answer says what is not stopped
        logger.exception("canceller failed", extra={"canceledJobs": len(canceled), "canceledBatches": batch_ids})
        live = state.db.ledger.live_tasks_for_jobs([job.id for job in canceled])
        return CancelReport(unstopped=unstopped(live, f"{type(exc).__name__}: {exc}"))


# -- GET /video/batches/{id} ------------------------------------------------------------------
@router.get(
    "/batches/{batch_id}", response_model=BatchResponse, response_model_by_alias=True, responses=errors(400, *AUTH_ERRORS, 404)
)
async def get_batch(batch_id: str, request: Request) -> BatchResponse:
    """`GET /video/batches/{batchId}`: the batch's status, jobs, playable URLs, spend and webhook state."""
    check_id(batch_id, "batchId")
    db = request.app.state.db
    principal = principal_of(request)

    def load() -> BatchResponse | None:
        batch = db.batches.get_batch(batch_id)
        if batch is None or not principal.can_see(batch.workspace_id):  # another workspace's: as unknown
            return None
        return BatchResponse.from_records(
            batch, db.batches.get_jobs(batch_id), db.spend.spend_ledger(batch_id=batch_id), request.app.state.media_urls,
            db.outbox.batch_webhooks(batch_id), db.events.running_progress(batch_id), db.outputs.get_outputs(batch_id),
        )  # fmt: skip

    answer = await run_in_threadpool(load)
    if answer is None:
        raise _not_found(batch_id)
    return answer
