"""A workspace's branding profile (issue 15 point 3, `db/branding.py`): `PUT` and `GET
/video/branding/{workspaceId}`.

The profile (agent name, brokerage, phone, email, website, the logo as a base64 PNG or JPEG of at
most 512 KB, colours) is what the template draws on the workspace's branded cuts (logo bug, end
card, contact line); a batch's `branding` overrides it field by field. The admin key reaches every
workspace; a workspace key its own only (another: 403 `WORKSPACE_MISMATCH`). `PUT` validates and
replaces the whole profile (400 `INVALID_INPUT` naming the field; nothing written; `{}` clears it),
`GET` answers 404 `NOT_FOUND` for a workspace without one.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from starlette.concurrency import run_in_threadpool

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.branding import BrandingProfile
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.service.auth import principal_of, require_api_key
from zencourt_pipeline.service.errors import ApiError, ApiErrorCode
from zencourt_pipeline.service.openapi import body_of, errors
from zencourt_pipeline.service.routes.common import read_json

router = APIRouter(prefix="/video", dependencies=[Depends(require_api_key)])
PATH = "/branding/{workspace_id}"
MAX_WORKSPACE_ID = 255  # as `workspaceId` of a batch


class BrandingResponse(BaseModel):
    """`{"success": true, "workspaceId", "branding": {...}}`."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)
    success: bool = True
    workspace_id: str
    branding: BrandingProfile


def _workspace(request: Request, workspace_id: str) -> str:
    if not 0 < len(workspace_id) <= MAX_WORKSPACE_ID:
        raise ApiError(400, ErrorCode.INVALID_INPUT, f"workspaceId must be 1 to {MAX_WORKSPACE_ID} characters", {"field": "workspaceId"})
    return principal_of(request).workspace_for(workspace_id) or workspace_id


@router.put(PATH, response_model=BrandingResponse, response_model_by_alias=True,
            responses=errors(400, 401, 403, 413, 429, 503), openapi_extra=body_of(BrandingProfile))  # fmt: skip
async def put_branding(workspace_id: str, request: Request) -> BrandingResponse:
    """Validate the body and store it as the workspace's profile (replacing one)."""
    workspace = _workspace(request, workspace_id)
    body = await read_json(request, BrandingProfile)
    try:
        profile = await run_in_threadpool(
            request.app.state.db.branding.put_branding, workspace, body.model_dump(exclude_none=True)
        )
    except MediaError as exc:  # what the model already refused: not reached for a valid body
        raise ApiError(400, ErrorCode.INVALID_INPUT, exc.message, {"field": "branding"}) from None
    return BrandingResponse(workspace_id=workspace, branding=profile)


@router.get(PATH, response_model=BrandingResponse, response_model_by_alias=True,
            responses=errors(400, 401, 403, 404, 429, 503))  # fmt: skip
async def get_branding(workspace_id: str, request: Request) -> BrandingResponse:
    """The workspace's profile; 404 NOT_FOUND without one."""
    workspace = _workspace(request, workspace_id)
    profile = await run_in_threadpool(request.app.state.db.branding.workspace_branding_profile, workspace)
    if profile is None:
        raise ApiError(404, ApiErrorCode.NOT_FOUND, "this workspace has no branding profile", {"workspaceId": workspace})
    return BrandingResponse(workspace_id=workspace, branding=profile)
