"""Operator actions over HTTP (write scope): `POST /video/batches/{id}/recompose` and
`POST /video/batches/{id}/regenerate` launch the UI's `batch_recompose_job` / `batch_regenerate_job`
for the batch's partition (pipeline/actions.py checks first, service/launch.py launches).

202 `{"success": true, "batchId", "runId", "action"}` when the run is launched; 404 for an unknown
batch or another workspace's; 409 for the batch's state (`CANCELED`, `IN_FLIGHT`, `QUOTA_EXCEEDED`,
`BATCH_BUSY`, `BATCH_FAILED`, `NO_COMPLETED_CLIPS`); 422 `INVALID_INPUT` for jobs not in the batch or an unknown
template; 503 without `DAGSTER_WEBSERVER_URL`, 502 when the webserver did not launch the run.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.concurrency import run_in_threadpool

from zencourt_pipeline.domain import MAX_JOBS_PER_BATCH, Orientation
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.templates import template_names
from zencourt_pipeline.pipeline.actions import (
    ActionRefused,
    LaunchRequest,
    OperatorAction,
    recompose_request,
    regenerate_request,
)
from zencourt_pipeline.pipeline.quota import QuotaLimits
from zencourt_pipeline.service.auth import Principal, principal_of, require_api_key
from zencourt_pipeline.service.errors import ApiError, ApiErrorCode, Code
from zencourt_pipeline.service.launch import LaunchFailed
from zencourt_pipeline.service.models import ActionResponse
from zencourt_pipeline.service.openapi import body_of, errors
from zencourt_pipeline.service.routes.common import Id, check_id, read_json

logger = logging.getLogger("zencourt_pipeline.service.actions")
router = APIRouter(prefix="/video", dependencies=[Depends(require_api_key)])


class RecomposeRequest(BaseModel):
    """`batch_recompose_job`'s run config: another template and/or orientation (absent: the batch's)."""

    model_config = ConfigDict(extra="forbid")
    template: Annotated[str, Field(json_schema_extra={"enum": template_names()})] | None = None
    orientation: Orientation | None = None


class RegenerateRequest(BaseModel):
    """`batch_regenerate_job`'s run config: the jobs of the batch to generate again."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)
    job_ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_JOBS_PER_BATCH)]


def _code(value: str) -> Code:
    return ApiErrorCode(str(value)) if str(value) in ApiErrorCode.__members__ else ErrorCode(str(value))


def _requested_by(principal: Principal) -> str:
    return "admin" if principal.admin else f"key:{principal.prefix}"


async def _launch(request: Request, batch_id: str, build) -> ActionResponse:
    """Load the batch (404 when unknown or another workspace's), check, then launch the run."""
    check_id(batch_id, "batchId")
    state = request.app.state
    principal = principal_of(request)
    if state.launcher is None:
        raise ApiError(
            503, ApiErrorCode.SERVICE_UNAVAILABLE, "operator actions are disabled: DAGSTER_WEBSERVER_URL is not set"
        )

    def check() -> LaunchRequest | None:
        batch = state.db.batches.get_batch(batch_id)
        if batch is None or not principal.can_see(batch.workspace_id):
            return None
        return build(state.db, batch, state.db.batches.get_jobs(batch_id), _requested_by(principal))

    try:
        launch = await run_in_threadpool(check)
    except ActionRefused as exc:
        raise ApiError(exc.status, _code(exc.code), exc.message, exc.details) from None
    if launch is None:
        raise ApiError(404, ApiErrorCode.NOT_FOUND, f"no batch {batch_id!r}", {"batchId": batch_id})
    try:
        run_id = await run_in_threadpool(state.launcher.launch, launch)
    except LaunchFailed as exc:
        logger.error("operator action not launched", extra={"batchId": batch_id, "action": launch.action, "error": str(exc)})
        raise ApiError(502, ApiErrorCode.BAD_GATEWAY, f"the run was not launched: {exc}", {"batchId": batch_id}) from None
    logger.info("operator action launched", extra={"batchId": batch_id, "action": launch.action, "runId": run_id})
    return ActionResponse(batch_id=batch_id, run_id=run_id, action=launch.action)


ACTION_ERRORS = errors(400, 401, 403, 404, 409, 422, 429, 502, 503)


@router.post(
    "/batches/{batch_id}/recompose",
    status_code=202,
    response_model=ActionResponse,
    response_model_by_alias=True,
    responses=ACTION_ERRORS,
    openapi_extra=body_of(RecomposeRequest),
)
async def recompose(batch_id: str, request: Request) -> ActionResponse:
    """`POST /video/batches/{batchId}/recompose`: launch `batch_recompose_job` for the batch (202)."""
    body = await read_json(request, RecomposeRequest)
    if body.template is not None:
        if body.template not in (known := template_names()):
            raise ApiError(
                422, ErrorCode.INVALID_INPUT, f"unknown template (known: {', '.join(known)})", {"field": "template"}
            )

    def build(_db, batch, jobs, requested_by: str) -> LaunchRequest:
        return recompose_request(
            batch, jobs, template=body.template, orientation=body.orientation, requested_by=requested_by
        )

    return await _launch(request, batch_id, build)


@router.post(
    "/batches/{batch_id}/regenerate",
    status_code=202,
    response_model=ActionResponse,
    response_model_by_alias=True,
    responses=ACTION_ERRORS,
    openapi_extra=body_of(RegenerateRequest),
)
async def regenerate(batch_id: str, request: Request) -> ActionResponse:
    """`POST /video/batches/{batchId}/regenerate`: launch `batch_regenerate_job` for the named jobs (202)."""
    body = await read_json(request, RegenerateRequest)
    settings = request.app.state.settings
    limits = QuotaLimits(settings.monthly_clip_quota, settings.workspace_monthly_clip_quota)

    def build(db, batch, jobs, requested_by: str) -> LaunchRequest:
        return regenerate_request(db, batch, jobs, body.job_ids, limits=limits, requested_by=requested_by)

    return await _launch(request, batch_id, build)


__all__ = ["OperatorAction", "router"]
