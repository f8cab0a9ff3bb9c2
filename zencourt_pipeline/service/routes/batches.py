"""Batch creation and listing (API key): `POST /video/batches`, `POST /video/batches:bulk`,
`GET /video/batches` (docs/contract.md section 4).

A batch created here is the rows the web app would insert (`BatchRepository.create_batch`, the same
statements as `insert_batch`), `pending`: the intake sensor picks it up the same way. The body
is checked as intake would check it (ids, at most `MAX_JOBS_PER_BATCH` jobs, orientation,
template, prompt length, duration, and an image URL intake may fetch: https, plain http only for
`MEDIA_ALLOWED_PRIVATE_HOSTS`, or a URI of the configured storage); nothing is fetched here.

Idempotency: with an `Idempotency-Key` header, the key and the SHA-256 of the body (its JSON,
canonical: sorted keys, no whitespace) are stored in the batch's transaction. The same key with
the same body answers 200 with that batch (`Idempotent-Replayed: true`), with another body 409
`IDEMPOTENCY_KEY_REUSED`. Keys of the admin key are global to the service; a workspace key's
are its workspace's (stored as `<workspace id> <key>`: a space is never in a key).

Workspaces (service/auth.py): a batch created with a workspace key belongs to the key's workspace
(a body `workspaceId` of another is 403 `WORKSPACE_MISMATCH`), and its storage-URI `imageUrl`s must
be under the workspace's storage prefix; the list shows a workspace key its workspace's batches only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError
from pydantic.alias_generators import to_camel
from starlette.concurrency import run_in_threadpool

from zencourt_pipeline.db.batches import CreateOutcome
from zencourt_pipeline.db.catalog import InvalidCursor
from zencourt_pipeline.db.clock import utcnow
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import BatchStatus
from zencourt_pipeline.domain import clamp_clip_seconds, outputs_json
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.net.policy import FetchPolicy
from zencourt_pipeline.service.auth import Principal, principal_of, require_api_key
from zencourt_pipeline.service.errors import ApiError, ApiErrorCode, error_body, validation_error
from zencourt_pipeline.service.models import (
    BatchListResponse,
    BatchResponse,
    BatchSummary,
    BulkResponse,
    BulkResult,
)
from zencourt_pipeline.service.openapi import (
    AUTH_ERRORS,
    JSON_BODY_ERRORS,
    body_of,
    errors,
    optional_query,
    parameters,
)
from zencourt_pipeline.service.routes.batch_bodies import (  # noqa: F401 - JobCreate: importable from here too
    MAX_BULK_BATCHES,
    BatchCreate,
    BulkCreate,
    JobCreate,
)
from zencourt_pipeline.service.routes.common import read_object
from zencourt_pipeline.storage.base import Storage
from zencourt_pipeline.storage.urls import MediaUrls

logger = logging.getLogger("zencourt_pipeline.service.batches")
router = APIRouter(prefix="/video", dependencies=[Depends(require_api_key)])

DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 200
MAX_IDEMPOTENCY_KEY_CHARS = 255
IDEMPOTENCY_KEY_RE = re.compile(rf"^[\x21-\x7e]{{1,{MAX_IDEMPOTENCY_KEY_CHARS}}}$")  # visible ASCII

# -- building the rows ----------------------------------------------------------------------------
def body_digest(data: Mapping[str, Any]) -> str:
    """SHA-256 of the body's canonical JSON (sorted keys, compact), what an Idempotency-Key is bound to."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _rows(body: BatchCreate) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    batch_id = body.id or f"b{uuid.uuid4().hex}"
    now = utcnow()  # set here, not by the server default: microseconds order the list
    batch = {
        "id": batch_id,
        "listing_id": body.listing_id,
        "workspace_id": body.workspace_id,
        "orientation": body.orientation,
        "template": body.template,
        "title": body.title,
        "facts": body.facts.to_json() if body.facts is not None else None,
        "instructions": body.instructions,
        "callback_url": body.callback_url,
        "narration_url": body.narration_url,
        "narration_identifies_agent": body.narration_identifies_agent,
        "outputs": outputs_json(body.outputs) if body.outputs is not None else None,
        "branding": body.branding.model_dump_json(exclude_none=True) if body.branding is not None else None,
        "status": BatchStatus.PENDING,
        "created_at": now,
        "updated_at": now,
    }
    used = {job.id for job in body.jobs if job.id is not None}
    jobs = []
    for index, job in enumerate(body.jobs):
        job_id = job.id
        if job_id is None:
            job_id = f"{batch_id}-{index}"
            if len(job_id) > 64 or job_id in used:
                job_id = f"j{uuid.uuid4().hex}"
            used.add(job_id)
        jobs.append(
            {
                "id": job_id,
                "sort_order": index if job.sort_order is None else job.sort_order,
                "room_name": job.room_name,
                "image_url": job.image_url,
                "prompt": job.prompt,
                # a given clip with an out point: its span, rounded into the column's bounds (informative)
                "duration_seconds": clamp_clip_seconds(job.seconds) if job.clip_out_seconds is not None else job.duration_seconds,
                "caption": job.caption,
                "transition": job.transition,
                "clip_url": job.clip_url,
                "clip_in_seconds": job.clip_in_seconds,
                "clip_out_seconds": job.clip_out_seconds,
                "focus_x": job.focus_x,
                "focus_y": job.focus_y,
                "created_at": now,
                "updated_at": now,
            }
        )
    return batch, jobs


def _response(db: AppDatabase, batch_id: str, urls: MediaUrls) -> BatchResponse:
    """The batch exactly as `GET /video/batches/{id}` shows it."""
    batch = db.batches.get_batch(batch_id)
    assert batch is not None, batch_id
    return BatchResponse.from_records(
        batch, db.batches.get_jobs(batch_id), db.spend.spend_ledger(batch_id=batch_id), urls, outputs=db.outputs.get_outputs(batch_id)
    )


def create_one(request: Request, data: Any, idempotency_key: str | None) -> tuple[int, BatchResponse]:
    """Validate and insert one batch (blocking: run in a worker thread). (status, batch) or ApiError."""
    state = request.app.state
    if not isinstance(data, dict):
        raise ApiError(400, ErrorCode.INVALID_INPUT, "a batch must be a JSON object")
    principal = principal_of(request)
    context = {
        "storage": state.storage,
        "policy": FetchPolicy.from_hosts(state.settings.media_allowed_private_hosts),
        "own_template": state.db.templates.workspace_template,  # a workspace's own templates (migration 0010)
        "workspace_id": None if principal.admin else principal.workspace_id,
    }
    try:
        body = BatchCreate.model_validate(data, context=context)
    except ValidationError as exc:
        raise validation_error(list(exc.errors())) from None
    body.workspace_id = principal.workspace_for(body.workspace_id)
    _check_texts(body, state.db)
    _check_image_keys(principal, body, state.storage)
    batch, jobs = _rows(body)
    db: AppDatabase = state.db
    stored_key = idempotency_key
    if idempotency_key is not None and not principal.admin:
        stored_key = f"{principal.workspace_id} {idempotency_key}"
    result = db.batches.create_batch(
        batch, jobs, idempotency_key=stored_key, body_sha256=body_digest(data) if idempotency_key else None
    )
    if result.outcome == CreateOutcome.CREATED:
        logger.info("batch created", extra={"batchId": result.batch_id, "jobs": len(jobs)})
        return 201, _response(db, result.batch_id, state.media_urls)
    if result.outcome == CreateOutcome.REPLAYED:
        return 200, _response(db, result.batch_id, state.media_urls)
    if result.outcome == CreateOutcome.KEY_REUSED:
        raise ApiError(
            409,
            ApiErrorCode.IDEMPOTENCY_KEY_REUSED,
            "this Idempotency-Key was used with another request body",
            {"batchId": result.batch_id},
        )
    if result.outcome == CreateOutcome.BATCH_EXISTS:
        raise ApiError(409, ApiErrorCode.BATCH_EXISTS, f"batch {result.batch_id!r} exists", {"batchId": result.batch_id})
    raise ApiError(
        409, ApiErrorCode.JOB_EXISTS, "job id(s) taken by another batch", {"field": "jobs", "jobIds": result.job_ids}
    )


def _check_texts(body: BatchCreate, db: AppDatabase) -> None:
    """400 naming the field when the batch's texts cannot be rendered, or a motion prompt with the
    batch's instructions would be too long (the checks intake makes)."""
    own = db.templates.workspace_template(body.workspace_id, body.template) if body.workspace_id and body.template else None
    problem = body.listing_problem(own)
    problems = [(problem.field, problem.message)] if problem is not None else body.prompt_problems()
    if problems:
        errors = [
            {"loc": [to_camel(part) for part in field.split(".")] if field else [], "msg": message, "type": "value_error"}
            for field, message in problems
        ]
        raise validation_error(errors)


def _check_image_keys(principal: Principal, body: BatchCreate, storage: Storage) -> None:
    """A workspace key's batch may name stored photos and clips under its workspace's prefix only."""
    for index, job in enumerate(body.jobs):
        for name, uri in (("imageUrl", job.image_url), ("clipUrl", job.clip_url)):
            key = storage.key_from_uri(uri) if uri is not None else None
            if key is not None and principal.storage_prefix is not None and not key.startswith(principal.storage_prefix):
                raise ApiError(
                    403,
                    ApiErrorCode.STORAGE_KEY_OUTSIDE_WORKSPACE,
                    f"jobs.{index}.{name}: this API key may only use storage keys under {principal.storage_prefix!r}",
                    {"field": f"jobs.{index}.{name}", "prefix": principal.storage_prefix},
                )


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY_RE.match(key):
        raise ApiError(
            400,
            ErrorCode.INVALID_INPUT,
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters",
            {"field": "Idempotency-Key"},
        )
    return key


# -- POST /video/batches ---------------------------------------------------------------------------
@router.post(
    "/batches",
    status_code=201,
    response_model=BatchResponse,
    response_model_by_alias=True,
    responses={200: {"model": BatchResponse, "description": "an idempotent replay",
                     "headers": {"Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}, "required": True}}},
               **errors(*JSON_BODY_ERRORS, *AUTH_ERRORS, 409)},
    openapi_extra={**body_of(BatchCreate), **parameters(
        ("Idempotency-Key", "header", {"type": "string", "pattern": IDEMPOTENCY_KEY_RE.pattern},
         "the same key and body answer the same batch (200); another body 409 IDEMPOTENCY_KEY_REUSED"),
    )},
)
async def create_batch(request: Request, response: Response) -> BatchResponse:
    """`POST /video/batches`: insert a pending batch and its jobs (201; 200 on an idempotent replay)."""
    key = _idempotency_key(request)
    data = await read_object(request)
    status, batch = await run_in_threadpool(create_one, request, data, key)
    response.status_code = status
    if status == 200:
        response.headers["Idempotent-Replayed"] = "true"
    return batch


# -- POST /video/batches:bulk ----------------------------------------------------------------------
@router.post(
    "/batches:bulk",
    response_model=BulkResponse,
    response_model_by_alias=True,
    responses=errors(*JSON_BODY_ERRORS, *AUTH_ERRORS),
    openapi_extra=body_of(BulkCreate),
)
async def create_batches(request: Request) -> BulkResponse:
    """`POST /video/batches:bulk`: create up to 100 batches, each created or refused on its own."""
    if request.headers.get("idempotency-key") is not None:
        raise ApiError(
            400,
            ErrorCode.INVALID_INPUT,
            "Idempotency-Key is not taken by the bulk route: give each batch an id (a retry answers 409 BATCH_EXISTS)",
            {"field": "Idempotency-Key"},
        )
    data = await read_object(request)
    items = data.get("batches")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BULK_BATCHES:
        raise ApiError(
            400,
            ErrorCode.INVALID_INPUT if "batches" in data else ErrorCode.MISSING_REQUIRED_FIELD,
            f"batches must be a list of 1 to {MAX_BULK_BATCHES} batches",
            {"field": "batches"},
        )

    def create_all() -> list[BulkResult]:
        results = []
        for index, item in enumerate(items):
            try:
                status, batch = create_one(request, item, None)
                results.append(BulkResult(index=index, status=status, batch=batch))
            except ApiError as exc:
                error = error_body(exc.status_code, exc.code, exc.message, exc.details)
                results.append(BulkResult(index=index, status=exc.status_code, error=error))
        return results

    return BulkResponse(results=await run_in_threadpool(create_all))


# -- GET /video/batches ----------------------------------------------------------------------------
def _query_error(name: str, message: str) -> ApiError:
    return ApiError(400, ErrorCode.INVALID_INPUT, f"{name}: {message}", {"field": name})


def _parse_since(value: str) -> datetime:
    try:
        since = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise _query_error("since", "must be an ISO 8601 time, e.g. 2026-03-01T12:00:00Z") from None
    return since if since.tzinfo else since.replace(tzinfo=UTC)


LIST_PARAMETERS = optional_query(  # `?x=` is as absent (the web app sends empty filters)
    ("listingId", {"type": "string", "maxLength": 255}, "only this listing's batches"),
    ("workspaceId", {"type": "string", "maxLength": 255}, "only this workspace's (a workspace key: its own)"),
    ("status", {"type": "string", "enum": [status.value for status in BatchStatus]}, "only batches in this status"),
    ("since", {"type": "string", "format": "date-time"}, "created at or after (ISO 8601)"),
    ("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIST_LIMIT}, f"page size, default {DEFAULT_LIST_LIMIT}"),
    ("cursor", {"type": "string", "maxLength": 1024}, "the previous page's nextCursor"),
)


@router.get(
    "/batches",
    response_model=BatchListResponse,
    response_model_by_alias=True,
    responses=errors(400, *AUTH_ERRORS),
    openapi_extra=LIST_PARAMETERS,
)
async def list_batches(request: Request) -> BatchListResponse:
    """`GET /video/batches`: batch summaries newest first, filtered and keyset-paginated."""
    params = {name: value for name, value in request.query_params.items() if value != ""}  # `?x=`: absent
    limit = DEFAULT_LIST_LIMIT
    if "limit" in params:
        try:
            limit = int(params["limit"])
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise _query_error("limit", f"must be an integer from 1 to {MAX_LIST_LIMIT}")
    status = None
    if "status" in params:
        try:
            status = BatchStatus(params["status"])
        except ValueError:
            raise _query_error("status", f"must be one of {', '.join(BatchStatus)}") from None
    for name in ("listingId", "workspaceId"):
        if len(params.get(name, "")) > 255:
            raise _query_error(name, "must be at most 255 characters")
    since = _parse_since(params["since"]) if "since" in params else None
    cursor = params.get("cursor")
    if cursor is not None and len(cursor) > 1024:
        raise _query_error("cursor", "is not a cursor this service handed out")
    workspace_id = principal_of(request).workspace_for(params.get("workspaceId"))  # a workspace key: its own
    db: AppDatabase = request.app.state.db

    def load() -> BatchListResponse:
        page = db.catalog.list_batches(
            listing_id=params.get("listingId"),
            workspace_id=workspace_id,
            status=status,
            since=since,
            cursor=cursor,
            limit=limit,
        )
        ids = [batch.id for batch in page.batches]
        counts, outputs, urls = db.catalog.job_status_counts(ids), db.outputs.outputs_of(ids), request.app.state.media_urls
        return BatchListResponse(
            batches=[BatchSummary.from_record(batch, counts[batch.id], urls, outputs[batch.id]) for batch in page.batches],
            next_cursor=page.next_cursor,
        )

    try:
        return await run_in_threadpool(load)
    except InvalidCursor:
        raise _query_error("cursor", "is not a cursor this service handed out") from None

